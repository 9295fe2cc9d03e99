"""gRPC, and only here: the servicer, domain <-> protobuf conversion, request envelope checks,
errors -> status, authentication and authorisation."""
