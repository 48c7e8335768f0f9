"""``python -m ml_platform.serving --redis-url ... --key-prefix ... --tracking-uri ... --lake-url ...``: the
prediction service in its own process (tests and benchmarks start it this way; ``ml-platform serve``
calls ``service.serve`` with the platform's settings)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before scikit-learn loads OpenMP

import argparse  # noqa: E402

from ml_platform.serving.online_store import DEFAULT_TTL_SECONDS, OnlineStoreSettings  # noqa: E402
from ml_platform.serving.service import DEFAULT_PORT, MAX_FLIGHTS, ServiceSettings, serve  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml_platform.serving", description=__doc__)
    parser.add_argument("--redis-url", required=True, help="redis://127.0.0.1:6379/<db>")
    parser.add_argument("--key-prefix", required=True)
    parser.add_argument("--ttl-seconds", type=int, default=DEFAULT_TTL_SECONDS)
    parser.add_argument("--tracking-uri", required=True, help="the MLflow server, http://127.0.0.1:5000")
    parser.add_argument("--lake-url", required=True, help="where answers are logged (a path or s3://bucket/prefix)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--model-check-seconds", type=float, default=10.0)
    parser.add_argument("--max-flights", type=int, default=MAX_FLIGHTS)
    parser.add_argument("--log-flush-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = ServiceSettings(
        online=OnlineStoreSettings(args.redis_url, args.key_prefix, args.ttl_seconds),
        tracking_uri=args.tracking_uri,
        lake_url=args.lake_url,
        max_flights=args.max_flights,
        model_check_seconds=args.model_check_seconds,
        log_flush_seconds=args.log_flush_seconds,
    )
    serve(settings, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
