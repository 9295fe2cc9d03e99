"""The web console (docs/CONSOLE.md): pages for reviewers and supervisors on their own HTTP
port, an in-process client of ApprovalService and ReviewService (calls.py), so the pages
get the same role checks, the same domain operations and the same error messages as gRPC."""
