"""Serving: the TF Serving deployment's facts, warmup requests, clients.

- `settings`: batch sizes, image version, model names, ports.
- `warmup`: `assets.extra/tf_serving_warmup_requests` writer and reader.
- `protos`: parsers for models.config, batching.config, monitoring.config.
- `RestClient`, `GrpcClient`: predict calls with retries and clear errors.
- `python -m common.serving embed-text | search | classify | promote`.
"""

from common.serving.grpc_client import GrpcClient
from common.serving.rest import RestClient, ServingError

__all__ = ["GrpcClient", "RestClient", "ServingError"]
