"""One unary call to examples/grpc_echo.py through the local runtime (or any front):

    python examples/grpc_call.py 127.0.0.1:8080 grpc-echo.default.example.com hello

The second argument is the authority (the Host the runtime routes by)."""

from __future__ import annotations

import sys

import grpc


def main() -> None:
    target, authority, message = sys.argv[1], sys.argv[2], sys.argv[3]
    with grpc.insecure_channel(target, options=[("grpc.default_authority", authority)]) as ch:
        answer = ch.unary_unary("/echo.Echo/Unary")(message.encode(), timeout=30)
    print(answer.decode())


if __name__ == "__main__":
    main()
