"""The transparent proxy: everything the sidecar does not rerank goes to the cluster unchanged."""

from sidecar.proxy.passthrough import add_passthrough_route
from sidecar.proxy.upstream import Upstream

__all__ = ["Upstream", "add_passthrough_route"]
