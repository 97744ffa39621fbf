"""Knative's autoscaler messages (pkg/autoscaler/metrics/stat.proto, wire.proto) as protobuf
classes built from descriptors at test time: the reference our hand-written encoders and
decoders are checked against. One pool for every test module."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["Stat", "WireStatMessage", "WireStatMessages"]

F = descriptor_pb2.FieldDescriptorProto


def _classes() -> tuple[Any, Any, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="knative_test_metrics.proto", package="metrics", syntax="proto3"
    )
    stat = fdp.message_type.add(name="Stat")
    for number, name, typ in (
        (1, "pod_name", F.TYPE_STRING),
        (2, "average_concurrent_requests", F.TYPE_DOUBLE),
        (3, "average_proxied_concurrent_requests", F.TYPE_DOUBLE),
        (4, "request_count", F.TYPE_DOUBLE),
        (5, "proxied_request_count", F.TYPE_DOUBLE),
        (6, "process_uptime", F.TYPE_DOUBLE),
        (7, "timestamp", F.TYPE_INT64),
    ):
        stat.field.add(name=name, number=number, type=typ, label=F.LABEL_OPTIONAL, json_name=name)
    wsm = fdp.message_type.add(name="WireStatMessage")
    wsm.field.add(name="namespace", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    wsm.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    wsm.field.add(name="stat", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".metrics.Stat")
    wsms = fdp.message_type.add(name="WireStatMessages")
    wsms.field.add(name="messages", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                   type_name=".metrics.WireStatMessage")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)

    def cls(name: str) -> Any:
        d = pool.FindMessageTypeByName(f"metrics.{name}")
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
            return message_factory.GetMessageClass(d)
        return message_factory.MessageFactory(pool).GetPrototype(d)  # pragma: no cover

    return cls("Stat"), cls("WireStatMessage"), cls("WireStatMessages")


Stat, WireStatMessage, WireStatMessages = _classes()
