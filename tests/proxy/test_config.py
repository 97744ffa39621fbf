"""Configuration from Knative's queue-proxy environment (pkg/queue/sharedmain/main.go envconfig)."""

from __future__ import annotations

import json

import pytest

from proxy.config import Config, ConfigError, from_environ

REQUIRED = (
    "CONTAINER_CONCURRENCY",
    "QUEUE_SERVING_PORT",
    "QUEUE_SERVING_TLS_PORT",
    "USER_PORT",
    "REVISION_TIMEOUT_SECONDS",
    "SERVING_LOGGING_CONFIG",
    "SERVING_LOGGING_LEVEL",
    "SERVING_NAMESPACE",
    "SERVING_CONFIGURATION",
    "SERVING_REVISION",
    "SERVING_POD",
    "SERVING_POD_IP",
)


def base_env(**overrides: str) -> dict[str, str]:
    env = {
        "CONTAINER_CONCURRENCY": "10",
        "QUEUE_SERVING_PORT": "8012",
        "QUEUE_SERVING_TLS_PORT": "8112",
        "USER_PORT": "8080",
        "REVISION_TIMEOUT_SECONDS": "300",
        "SERVING_LOGGING_CONFIG": "",
        "SERVING_LOGGING_LEVEL": "",
        "SERVING_NAMESPACE": "default",
        "SERVING_CONFIGURATION": "hello",
        "SERVING_REVISION": "hello-00001",
        "SERVING_POD": "hello-00001-deployment-abc",
        "SERVING_POD_IP": "10.0.0.5",
    }
    env.update(overrides)
    return env


# --------------------------------------------------------------------------- required


def test_base_env_parses() -> None:
    cfg = from_environ(base_env())
    assert isinstance(cfg, Config)
    assert cfg.container_concurrency == 10
    assert cfg.serving_port == 8012
    assert cfg.serving_tls_port == 8112
    assert cfg.user_port == 8080
    assert cfg.revision_timeout == 300.0
    assert cfg.namespace == "default"
    assert cfg.configuration == "hello"
    assert cfg.revision == "hello-00001"
    assert cfg.pod == "hello-00001-deployment-abc"
    assert cfg.pod_ip == "10.0.0.5"
    assert cfg.logging_config == ""
    assert cfg.logging_level == ""


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_variable_names_it(name: str) -> None:
    env = base_env()
    del env[name]
    with pytest.raises(ConfigError, match=name):
        from_environ(env)


def test_missing_required_message_is_envconfigs() -> None:
    env = base_env()
    del env["SERVING_POD"]
    with pytest.raises(ConfigError) as info:
        from_environ(env)
    assert str(info.value) == "required key SERVING_POD missing value"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "name", ["SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL", "SERVING_NAMESPACE"]
)
def test_required_strings_may_be_empty(name: str) -> None:
    from_environ(base_env(**{name: ""}))


def test_empty_env_names_a_required_variable() -> None:
    with pytest.raises(ConfigError, match="required key"):
        from_environ({})


# --------------------------------------------------------------------------- ints and ports


@pytest.mark.parametrize("value", ["abc", "1.5", "", "ten", "0x"])
def test_non_int_container_concurrency(value: str) -> None:
    with pytest.raises(ConfigError, match="CONTAINER_CONCURRENCY"):
        from_environ(base_env(CONTAINER_CONCURRENCY=value))


@pytest.mark.parametrize("value", ["-1", "-10"])
def test_negative_container_concurrency_is_unlimited(value: str) -> None:
    # Knative's buildBreaker: below 1, no breaker.
    cfg = from_environ(base_env(CONTAINER_CONCURRENCY=value))
    assert cfg.container_concurrency == 0
    assert cfg.queue_depth == 0


@pytest.mark.parametrize(("value", "want"), [
    ("10", 10), ("017", 15), ("0x1f", 31), ("0o17", 15), ("0b101", 5), ("1_000", 1000),
    ("+3", 3), ("0", 0)])
def test_ints_parse_as_gos_parseint_base_0(value: str, want: int) -> None:
    # envconfig reads ints with strconv.ParseInt(value, 0, 64)
    assert from_environ(base_env(CONTAINER_CONCURRENCY=value)).container_concurrency == want
    if want:
        assert from_environ(base_env(REVISION_TIMEOUT_SECONDS=value)).revision_timeout == want


@pytest.mark.parametrize("value", [" 5", "5 ", "08", "1__0", "1_", "_1", "9223372036854775808"])
def test_ints_go_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match="CONTAINER_CONCURRENCY"):
        from_environ(base_env(CONTAINER_CONCURRENCY=value))


def test_zero_container_concurrency_is_unlimited() -> None:
    cfg = from_environ(base_env(CONTAINER_CONCURRENCY="0"))
    assert cfg.container_concurrency == 0
    assert cfg.queue_depth == 0


def test_queue_depth_is_ten_per_slot() -> None:
    assert from_environ(base_env(CONTAINER_CONCURRENCY="7")).queue_depth == 70


@pytest.mark.parametrize(
    "name",
    [
        "QUEUE_SERVING_PORT",
        "QUEUE_SERVING_TLS_PORT",
        "USER_PORT",
        "REVISION_TIMEOUT_SECONDS",
        "REVISION_RESPONSE_START_TIMEOUT_SECONDS",
        "REVISION_IDLE_TIMEOUT_SECONDS",
        "QUEUE_ADMIN_PORT",
        "QUEUE_METRICS_PORT",
        "METRICS_PROMETHEUS_PORT",
    ],
)
def test_non_int_values_name_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_environ(base_env(**{name: "nope"}))


@pytest.mark.parametrize("value", ["65536", "-1", "100000"])
def test_port_out_of_range(value: str) -> None:
    with pytest.raises(ConfigError, match="USER_PORT"):
        from_environ(base_env(USER_PORT=value))


def test_zero_revision_timeout_refused() -> None:
    with pytest.raises(ConfigError, match="REVISION_TIMEOUT_SECONDS"):
        from_environ(base_env(REVISION_TIMEOUT_SECONDS="0"))


def test_timeouts() -> None:
    cfg = from_environ(
        base_env(
            REVISION_TIMEOUT_SECONDS="60",
            REVISION_RESPONSE_START_TIMEOUT_SECONDS="5",
            REVISION_IDLE_TIMEOUT_SECONDS="7",
        )
    )
    assert (cfg.revision_timeout, cfg.response_start_timeout, cfg.idle_timeout) == (60.0, 5.0, 7.0)
    assert all(isinstance(v, float) for v in (cfg.revision_timeout, cfg.idle_timeout))


def test_optional_timeouts_off_when_zero() -> None:
    cfg = from_environ(
        base_env(REVISION_RESPONSE_START_TIMEOUT_SECONDS="0", REVISION_IDLE_TIMEOUT_SECONDS="0")
    )
    assert cfg.response_start_timeout == 0.0
    assert cfg.idle_timeout == 0.0


@pytest.mark.parametrize("name", ["REVISION_RESPONSE_START_TIMEOUT_SECONDS",
                                  "REVISION_IDLE_TIMEOUT_SECONDS"])
def test_optional_int_set_but_empty_is_an_error(name: str) -> None:
    # envconfig: a variable that is set is parsed, and ParseInt("") fails
    with pytest.raises(ConfigError, match=name):
        from_environ(base_env(**{name: ""}))


def test_ports_can_be_moved() -> None:
    cfg = from_environ(
        base_env(QUEUE_ADMIN_PORT="18022", QUEUE_METRICS_PORT="19090", METRICS_PROMETHEUS_PORT="0")
    )
    assert (cfg.admin_port, cfg.metrics_port, cfg.prometheus_port) == (18022, 19090, 0)


# --------------------------------------------------------------------------- defaults


def test_defaults_for_optional_variables() -> None:
    cfg = from_environ(base_env())
    assert cfg.response_start_timeout == 0.0
    assert cfg.idle_timeout == 0.0
    assert cfg.readiness_probe == ""
    assert cfg.enable_http_full_duplex is False
    assert cfg.enable_http2_auto_detection is False
    assert cfg.enable_multi_container_probes is False
    assert cfg.service == ""
    assert cfg.admin_port == 8022
    assert cfg.metrics_port == 9090
    assert cfg.prometheus_port == 9091
    assert cfg.user_host == "127.0.0.1"
    assert cfg.observability == {}
    assert cfg.request_metrics_enabled is False
    assert cfg.drain_quiet_period == 30.0
    assert cfg.header_read_timeout == 60.0


def test_dataclass_defaults_are_knatives() -> None:
    cfg = Config()
    assert (cfg.serving_port, cfg.serving_tls_port, cfg.user_port) == (8012, 8112, 8080)
    assert cfg.container_concurrency == 0
    assert cfg.queue_depth == 0
    assert cfg.observability == {}
    assert Config().observability is not cfg.observability  # no shared mutable default


def test_optional_strings() -> None:
    probe = json.dumps({"tcpSocket": {"port": 8080}, "periodSeconds": 0})
    cfg = from_environ(base_env(SERVING_SERVICE="hello", SERVING_READINESS_PROBE=probe))
    assert cfg.service == "hello"
    assert cfg.readiness_probe == probe


# --------------------------------------------------------------------------- bools


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("t", True),
        ("false", False),
        ("0", False),
        ("FALSE", False),
        ("TRUE", True),
        ("T", True),
        ("F", False),
        ("False", False),
    ],
)
def test_bool_values(value: str, want: bool) -> None:
    cfg = from_environ(
        base_env(
            ENABLE_HTTP_FULL_DUPLEX=value,
            ENABLE_HTTP2_AUTO_DETECTION=value,
            ENABLE_MULTI_CONTAINER_PROBES=value,
        )
    )
    assert cfg.enable_http_full_duplex is want
    assert cfg.enable_http2_auto_detection is want
    assert cfg.enable_multi_container_probes is want


@pytest.mark.parametrize(
    "name",
    ["ENABLE_HTTP_FULL_DUPLEX", "ENABLE_HTTP2_AUTO_DETECTION", "ENABLE_MULTI_CONTAINER_PROBES"],
)
@pytest.mark.parametrize("value", ["maybe", "", "yes", "on", "tRUE", " true"])
def test_bad_bool_names_the_variable(name: str, value: str) -> None:
    # Go's strconv.ParseBool takes its twelve spellings only; a set but empty value fails too
    with pytest.raises(ConfigError, match=name):
        from_environ(base_env(**{name: value}))


def test_unset_bools_are_false() -> None:
    cfg = from_environ(base_env())
    assert not (cfg.enable_http_full_duplex or cfg.enable_http2_auto_detection
                or cfg.enable_multi_container_probes)


# --------------------------------------------------------------------------- observability


def test_observability_json_parsed() -> None:
    obs = {"requestMetrics": {"protocol": "prometheus"}, "enableRequestLog": True}
    cfg = from_environ(base_env(OBSERVABILITY_CONFIG=json.dumps(obs)))
    assert cfg.observability == obs
    assert cfg.request_metrics_enabled is True


@pytest.mark.parametrize(
    ("obs", "want"),
    [
        ({}, False),
        ({"requestMetrics": {}}, False),
        ({"requestMetrics": None}, False),
        ({"requestMetrics": {"protocol": "none"}}, False),
        ({"requestMetrics": {"protocol": "grpc"}}, False),
        ({"requestMetrics": {"protocol": "prometheus"}}, True),
        ({"metrics": {"protocol": "prometheus"}}, False),  # backend metrics, not request metrics
    ],
)
def test_request_metrics_enabled(obs: dict, want: bool) -> None:
    cfg = from_environ(base_env(OBSERVABILITY_CONFIG=json.dumps(obs)))
    assert cfg.request_metrics_enabled is want


def test_empty_observability_config_is_default() -> None:
    cfg = from_environ(base_env(OBSERVABILITY_CONFIG=""))
    assert cfg.observability == {}


@pytest.mark.parametrize("raw", ["{", "not json", '{"a": }'])
def test_invalid_observability_json(raw: str) -> None:
    with pytest.raises(ConfigError, match="OBSERVABILITY_CONFIG"):
        from_environ(base_env(OBSERVABILITY_CONFIG=raw))


@pytest.mark.parametrize("raw", ["[]", "1", '"prometheus"'])
def test_observability_must_be_an_object(raw: str) -> None:
    with pytest.raises(ConfigError, match="OBSERVABILITY_CONFIG"):
        from_environ(base_env(OBSERVABILITY_CONFIG=raw))


@pytest.mark.parametrize("obs", [{"requestMetrics": "prometheus"}, {"requestMetrics": ["x"]}])
def test_non_object_request_metrics_is_a_config_error(obs: dict) -> None:
    try:
        cfg = from_environ(base_env(OBSERVABILITY_CONFIG=json.dumps(obs)))
    except ConfigError as exc:
        assert "OBSERVABILITY_CONFIG" in str(exc)
        return
    assert cfg.request_metrics_enabled in (True, False)


# --------------------------------------------------------------------------- test knobs


def test_test_knobs_accept_fractional_seconds() -> None:
    cfg = from_environ(base_env(QUEUE_DRAIN_QUIET_PERIOD="0.25", QUEUE_HEADER_READ_TIMEOUT="1.5"))
    assert cfg.drain_quiet_period == 0.25
    assert cfg.header_read_timeout == 1.5


@pytest.mark.parametrize("name", ["QUEUE_DRAIN_QUIET_PERIOD", "QUEUE_HEADER_READ_TIMEOUT"])
def test_bad_test_knob_names_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_environ(base_env(**{name: "soon"}))


def test_environ_is_not_modified() -> None:
    env = base_env(OBSERVABILITY_CONFIG='{"requestMetrics": {"protocol": "prometheus"}}')
    before = dict(env)
    from_environ(env)
    assert env == before
