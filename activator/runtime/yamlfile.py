"""YAML for the manifests: PyYAML's safe loader, with mappings and sequences that remember their
lines (errors name them) and repeated keys refused (Kubernetes' strict decoding refuses them;
PyYAML would keep the last silently)."""



from __future__ import annotations

from typing import Any

import yaml

from activator.runtime.service import (
    ServiceError,
    _show,
)

__all__ = ["YamlMap", "YamlSeq", "load_yaml"]



class YamlMap(dict[Any, Any]):
    __slots__ = ("line", "key_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class YamlSeq(list[Any]):
    __slots__ = ("line", "item_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> YamlMap:
    own = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
    loader.flatten_mapping(node)  # "<<" merges first, so that the node's own keys override
    out = YamlMap(node.start_mark.line + 1)
    own_seen: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark) from None
        if id(key_node) in own:
            if key in own_seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found a repeated key {_show(key)}", key_node.start_mark)
            own_seen.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> YamlSeq:
    out = YamlSeq(node.start_mark.line + 1)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(data: str | bytes, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(data, Loader=_Loader))  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "malformed"
        if mark is None:
            raise ServiceError(source, "", f"invalid YAML: {problem}") from None
        raise ServiceError(source, "", f"invalid YAML: {problem}", mark.line + 1,
                           mark.column + 1) from None
    except yaml.reader.ReaderError as e:  # bytes that are not UTF-8 or UTF-16, control chars
        problem = str(e).splitlines()[0]
        raise ServiceError(source, "", f"invalid YAML: {problem} at position {e.position}"
                           ) from None
    except yaml.YAMLError as e:
        raise ServiceError(source, "", f"invalid YAML: {e}") from None
    except RecursionError:
        raise ServiceError(source, "", "invalid YAML: nested too deeply") from None


