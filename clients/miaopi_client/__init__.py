"""miaopi (秒批) client: gRPC client library, replay of case files, and the `miaopi` CLI."""

from .cases import load_cases
from .client import CaseFileError, Client, ClientError, MiaopiClientError
from .replay import replay

__all__ = ["CaseFileError", "Client", "ClientError", "MiaopiClientError", "load_cases", "replay"]
