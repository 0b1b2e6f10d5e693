"""Tests of twister2.config: the schema, every layer and its precedence, and the errors.

Every test runs with no ``TWISTER2_*`` variables, ``TWISTER2_CONFIG_DIR`` and ``HOME`` under
``tmp_path`` and an empty :func:`twister2.config.set` layer, so the real home is never read.

Run this file as a script to rewrite the key table in ``docs/configuration.md`` from
``schema.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from twister2 import config
from twister2.config import (
    Config,
    ConfigError,
    KeySpec,
    _config,
    parse_assignment,
    resolve,
    schema,
)
from twister2.config._schema import _packaged_schema, load_schema

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TABLE_BEGIN = "<!-- begin: generated from schema.yaml -->\n"
TABLE_END = "<!-- end: generated from schema.yaml -->"


@pytest.fixture(autouse=True)
def conf_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty TWISTER2_CONFIG_DIR, a fake HOME, no TWISTER2_* variables, no set() values."""
    for name in list(os.environ):
        if name.startswith("TWISTER2_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    directory = tmp_path / "conf"
    directory.mkdir()
    monkeypatch.setenv("TWISTER2_CONFIG_DIR", str(directory))
    monkeypatch.setattr(_config, "_set_layer", [])
    return directory


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HOME"])


# ------------------------------------------------------------------------------- schema

EXPECTED_DEFAULTS: dict[str, Any] = {
    "job.log_dir": "~/.twister2/jobs",
    "job.scratch_dir": None,
    "job.timeout": None,
    "logging.level": "INFO",
    "master.interface": "127.0.0.1",
    "master.port": 0,
    "master.heartbeat_interval": 1.0,
    "master.failure_timeout": 10.0,
    "master.join_timeout": 60.0,
    "master.barrier_timeout": 300.0,
    "master.kill_grace": 3.0,
    "network.channel": "auto",
    "network.interface": "127.0.0.1",
    "network.connect_timeout": 30.0,
    "network.close_timeout": 10.0,
    "net.batch_records": 1024,
    "net.early_message_bytes": 268435456,
    "net.send_buffer_records": 65536,
    "net.tree_degree": 2,
    "net.partition_routing": "direct",
    "net.spill.memory_bytes": 104857600,
    "stream.linger_ms": 5.0,
    "stream.batch_records": 256,
    "stream.window_batches": 8,
    "stream.send_buffer": 8192,
    "stream.receive_buffer": 8192,
    "network.recv_timeout": 600.0,
    "network.recv_buffer_bytes": 268435456,
    "resource.cpu": 1.0,
    "resource.memory_mb": 512,
    "resource.disk_gb": 1.0,
    "resource.local.max_workers": 256,
    "resource.mpi.mpiexec": "",
    "resource.mpi.hostfile": None,
    "resource.mpi.extra_args": (),
    "resource.mpi.interface": "",
    "resource.slurm.partition": "",
    "resource.slurm.time_limit": "",
    "resource.slurm.nodes": 0,
    "resource.slurm.account": "",
    "resource.slurm.mpi": "auto",
    "resource.slurm.sbatch_args": (),
    "resource.slurm.srun_args": (),
    "resource.slurm.python": "",
    "resource.slurm.bin_dir": None,
    "resource.slurm.poll_interval": 1.0,
    "resource.kubernetes.api_server": "",
    "resource.kubernetes.kubeconfig": None,
    "resource.kubernetes.context": "",
    "resource.kubernetes.token_file": None,
    "resource.kubernetes.ca_file": None,
    "resource.kubernetes.namespace": "default",
    "resource.kubernetes.image": "",
    "resource.kubernetes.image_pull_policy": "IfNotPresent",
    "resource.kubernetes.python": "python",
    "resource.kubernetes.service_account": "",
    "resource.kubernetes.persistent_volume_gb": 0.0,
    "resource.kubernetes.storage_class": "",
    "resource.kubernetes.persistent_mount": "/twister2/persistent",
    "resource.kubernetes.cluster_domain": "cluster.local",
    "resource.kubernetes.poll_interval": 1.0,
    "resource.kubernetes.request_timeout": 10.0,
    "resource.nomad.address": "http://127.0.0.1:4646",
    "resource.nomad.token_file": None,
    "resource.nomad.namespace": "",
    "resource.nomad.region": "",
    "resource.nomad.datacenters": ("*",),
    "resource.nomad.driver": "raw_exec",
    "resource.nomad.image": "",
    "resource.nomad.python": "",
    "resource.nomad.poll_interval": 1.0,
    "resource.mesos.master": "http://127.0.0.1:5050",
    "resource.mesos.role": "*",
    "resource.mesos.principal": "",
    "resource.mesos.secret_file": None,
    "resource.mesos.python": "",
    "resource.mesos.offer_timeout": 60.0,
    "dashboard.interface": "127.0.0.1",
    "dashboard.port": 8686,
    "dashboard.metrics_interval": 5.0,
    "dashboard.log_lines_per_second": 100,
    "dashboard.straggler_factor": 1.5,
    "storage.persistent_root": "~/.twister2/storage",
    "storage.persistent_shared": True,
    "storage.volatile_root": None,
    "io.batch_rows": 65536,
    "io.text.block_bytes": 1048576,
    "io.csv.bad_rows": "error",
    "io.csv.infer_bytes": 1048576,
    "io.s3.endpoint": "",
    "io.s3.access_key": "",
    "io.s3.secret_key": "",
    "io.s3.region": "",
    "io.s3.connect_timeout": 5.0,
    "io.s3.request_timeout": 60.0,
    "io.s3.max_attempts": 3,
    "io.hdfs.user": "",
}


def test_schema_holds_every_key_with_its_default() -> None:
    specs = schema()
    assert {k: s.default for k, s in specs.items()} == EXPECTED_DEFAULTS
    for key, spec in specs.items():
        assert isinstance(spec, KeySpec)
        assert spec.key == key
        assert spec.doc
    assert specs["network.channel"].choices == ("auto", "tcp", "mpi")
    assert specs["logging.level"].choices == ("DEBUG", "INFO", "WARNING", "ERROR")
    assert specs["resource.mpi.hostfile"].nullable
    assert specs["network.recv_timeout"].nullable
    assert not specs["master.port"].nullable


def test_schema_is_a_fresh_dict_of_frozen_specs() -> None:
    specs = schema()
    specs.clear()
    assert "master.port" in schema()
    with pytest.raises(dataclasses.FrozenInstanceError):
        schema()["master.port"].default = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: {b: {type: complex, default: 1, doc: d}}", "unknown type 'complex'"),
        ("a: {b: {type: int, default: 1}}", "needs a default and a one-line doc"),
        ("a: {b: {type: int, doc: d}}", "needs a default and a one-line doc"),
        ("a: {b: {type: int, default: x, doc: d}}", "must be an int, got 'x'"),
        ("a: {b: {type: choice, default: x, doc: d}}", "needs a choices list"),
        ("a: {b: {type: int, choices: [1], default: 1, doc: d}}", "needs a choices list"),
        ("a: {b: {type: int, default: 1, doc: d, help: h}}", "unknown fields ['help']"),
        ("a: {b: {type: int, default: 1, doc: d, nullable: 1}}", "nullable must be true"),
        ("a: [1, 2]", "'a' must be a section or a key spec"),
        ("a: {b: [oops", "cannot parse the config schema"),
    ],
)
def test_a_broken_schema_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_schema(text, where="the-schema.yaml")
    assert "the-schema.yaml" in str(info.value)


def test_docs_table_matches_schema() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert TABLE_BEGIN in text, f"{DOCS} lost its marker {TABLE_BEGIN.strip()}"
    table = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    assert table == _packaged_schema().markdown_table(), (
        f"the key table in {DOCS} is out of date with schema.yaml; "
        f"regenerate it with: python {Path(__file__).relative_to(DOCS.parents[1])}"
    )


# ------------------------------------------------------------------------------ defaults


def test_defaults(home: Path) -> None:
    cfg = resolve()
    assert isinstance(cfg, Config)
    assert set(cfg) == set(EXPECTED_DEFAULTS)
    assert len(cfg) == len(EXPECTED_DEFAULTS)
    assert cfg["job.log_dir"] == str(home / ".twister2" / "jobs")
    assert cfg["master.failure_timeout"] == 10.0
    assert isinstance(cfg["master.failure_timeout"], float)
    assert cfg["network.channel"] == "auto"
    assert cfg["resource.mpi.extra_args"] == []
    assert cfg["resource.mpi.hostfile"] is None
    assert cfg.sources() == {}
    assert resolve("local") == cfg
    assert Config() == cfg


def test_config_dir_defaults_to_dot_config(
    monkeypatch: pytest.MonkeyPatch, home: Path, tmp_path: Path
) -> None:
    monkeypatch.delenv("TWISTER2_CONFIG_DIR")
    (home / ".config" / "twister2").mkdir(parents=True)
    (home / ".config" / "twister2" / "config.yaml").write_text("master: {port: 11}\n")
    (home / ".config" / "twister2" / "slurm.yaml").write_text("master: {port: 12}\n")
    assert resolve()["master.port"] == 11
    assert resolve("slurm")["master.port"] == 12


# -------------------------------------------------------------------------------- layers


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5])
def test_each_layer_overrides_the_one_below(
    layers: int, conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """master.port is set to N in layers 1..N; the highest layer given must win."""
    _write(conf_dir / "config.yaml", "master:\n  port: 1\n")
    if layers >= 2:
        _write(conf_dir / "mpi.yaml", "master:\n  port: 2\n")
    if layers >= 3:
        monkeypatch.setenv("TWISTER2_MASTER__PORT", "3")
    overrides = {"master.port": 5} if layers >= 5 else None
    with config.set({"master.port": 4} if layers >= 4 else {}):
        cfg = resolve("mpi", overrides=overrides)
    assert cfg["master.port"] == layers
    expected_source = [
        f"file {conf_dir / 'config.yaml'}",
        f"file {conf_dir / 'mpi.yaml'}",
        "environment variable TWISTER2_MASTER__PORT",
        "config.set",
        _config.OVERRIDES_SOURCE,
    ][layers - 1]
    assert cfg.sources() == {"master.port": expected_source}


def test_layers_merge_key_by_key(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(conf_dir / "config.yaml", "network: {channel: tcp}\nmaster: {port: 1}\n")
    _write(conf_dir / "local.yaml", "master: {port: 2, kill_grace: 7}\n")
    monkeypatch.setenv("TWISTER2_RESOURCE__CPU", "2")
    cfg = resolve("local", overrides={"resource.memory_mb": 1024})
    assert cfg["network.channel"] == "tcp"
    assert cfg["master.port"] == 2
    assert cfg["master.kill_grace"] == 7.0
    assert cfg["resource.cpu"] == 2.0
    assert cfg["resource.memory_mb"] == 1024
    assert cfg["master.failure_timeout"] == 10.0
    assert set(cfg.sources()) == {
        "network.channel",
        "master.port",
        "master.kill_grace",
        "resource.cpu",
        "resource.memory_mb",
    }


def test_cluster_file_is_read_only_for_its_cluster(conf_dir: Path) -> None:
    _write(conf_dir / "mpi.yaml", "network: {channel: mpi}\n")
    assert resolve("mpi")["network.channel"] == "mpi"
    assert resolve("local")["network.channel"] == "auto"
    assert resolve()["network.channel"] == "auto"


@pytest.mark.parametrize("cluster", ["../mpi", "a/b", ""])
def test_cluster_name_must_be_plain(cluster: str) -> None:
    if not cluster:
        assert resolve(cluster) == resolve()
        return
    with pytest.raises(ConfigError, match="must be a plain name"):
        resolve(cluster)


def test_twister2_config_names_the_user_file(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(conf_dir / "config.yaml", "master: {port: 1}\n")
    other = _write(tmp_path / "elsewhere.yaml", "master: {join_timeout: 5}\n")
    monkeypatch.setenv("TWISTER2_CONFIG", str(other))
    cfg = resolve()
    assert cfg["master.join_timeout"] == 5.0
    assert cfg["master.port"] == 0  # config.yaml in the config dir is not read then


def test_twister2_config_naming_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("TWISTER2_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="TWISTER2_CONFIG") as info:
        resolve()
    assert str(missing) in str(info.value)


def test_file_forms(conf_dir: Path, home: Path) -> None:
    _write(
        conf_dir / "config.yaml",
        "# a comment\n"
        "master.failure_timeout: 30\n"
        "network:\n"
        "  recv_timeout: null\n"
        "resource:\n"
        "  mpi.hostfile: ~/hosts\n"
        "  mpi:\n"
        "    extra_args: [--bind-to, core]\n"
        "job:\n",  # an empty section
    )
    cfg = resolve()
    assert cfg["master.failure_timeout"] == 30.0
    assert cfg["network.recv_timeout"] is None
    assert cfg["resource.mpi.hostfile"] == str(home / "hosts")
    assert cfg["resource.mpi.extra_args"] == ["--bind-to", "core"]


def test_empty_file_is_fine(conf_dir: Path) -> None:
    _write(conf_dir / "config.yaml", "# nothing set yet\n")
    assert resolve() == Config()


def test_key_given_twice_in_a_file(conf_dir: Path) -> None:
    path = _write(conf_dir / "config.yaml", "network.channel: tcp\nnetwork: {channel: mpi}\n")
    with pytest.raises(ConfigError, match=r"'network\.channel' is given twice") as info:
        resolve()
    assert str(path) in str(info.value)


def test_malformed_yaml_names_the_file(conf_dir: Path) -> None:
    path = _write(conf_dir / "local.yaml", "network: {channel: tcp\nmaster: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        resolve("local")
    assert str(path) in str(info.value)


def test_file_that_is_not_a_mapping(conf_dir: Path) -> None:
    path = _write(conf_dir / "config.yaml", "- network.channel\n- tcp\n")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        resolve()
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("name", "text", "key", "value"),
    [
        ("TWISTER2_MASTER__PORT", "5", "master.port", 5),
        ("TWISTER2_MASTER__FAILURE_TIMEOUT", "2", "master.failure_timeout", 2.0),
        ("TWISTER2_MASTER__FAILURE_TIMEOUT", "1e3", "master.failure_timeout", 1000.0),
        ("TWISTER2_NETWORK__RECV_TIMEOUT", "null", "network.recv_timeout", None),
        ("TWISTER2_NETWORK__CHANNEL", "tcp", "network.channel", "tcp"),
        ("TWISTER2_LOGGING__LEVEL", "DEBUG", "logging.level", "DEBUG"),
        ("TWISTER2_MASTER__INTERFACE", "10.0.0.1", "master.interface", "10.0.0.1"),
        ("TWISTER2_MASTER__INTERFACE", "1.0", "master.interface", "1.0"),
        ("TWISTER2_RESOURCE__MPI__MPIEXEC", "", "resource.mpi.mpiexec", ""),
        (
            "TWISTER2_RESOURCE__MPI__EXTRA_ARGS",
            "[-x, FOO]",
            "resource.mpi.extra_args",
            ["-x", "FOO"],
        ),
        ("TWISTER2_RESOURCE__MPI__HOSTFILE", "/etc/hosts", "resource.mpi.hostfile", "/etc/hosts"),
        ("TWISTER2_JOB__SCRATCH_DIR", "", "job.scratch_dir", None),
        ("TWISTER2_JOB__LOG_DIR", "/var/t2", "job.log_dir", "/var/t2"),
    ],
)
def test_environment_values_are_read_as_yaml(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, key: str, value: Any
) -> None:
    monkeypatch.setenv(name, text)
    cfg = resolve()
    assert cfg[key] == value
    assert type(cfg[key]) is type(value)
    assert cfg.sources() == {key: f"environment variable {name}"}


@pytest.mark.parametrize(
    "name",
    [
        "TWISTER2_JOB_ID",
        "TWISTER2_JOB_SECRET",
        "TWISTER2_WORKER_ID",
        "TWISTER2_WORKER_SOME__THING",
        "TWISTER2_SUBMIT_ARGS",
        "TWISTER2_MASTER_ADDRESS",
        "TWISTER2_MASTER_ADDRESS__X",
        "TWISTER2_NETWORK_CHANNEL",  # one underscore: not a config key
        "TWISTER2_SOMETHING",
    ],
)
def test_plumbing_variables_are_not_config(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "not: [a config value")
    assert resolve() == Config()


def test_config_file_variables_are_not_keys(
    monkeypatch: pytest.MonkeyPatch, conf_dir: Path
) -> None:
    monkeypatch.setenv("TWISTER2_CONFIG", str(_write(conf_dir / "x.yaml", "")))
    assert resolve().sources() == {}


def test_environment_wrong_type_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWISTER2_MASTER__PORT", "true")
    with pytest.raises(ConfigError) as info:
        resolve()
    assert str(info.value) == (
        "config key 'master.port' (from environment variable TWISTER2_MASTER__PORT) "
        "must be an int in [0, 65535], got True (bool)"
    )


# ------------------------------------------------------------------------------ config.set


def test_set_as_a_context_manager_restores() -> None:
    with config.set({"network.channel": "tcp"}, master__port=9):
        cfg = resolve()
        assert cfg["network.channel"] == "tcp"
        assert cfg["master.port"] == 9
        assert cfg.sources() == {"network.channel": "config.set", "master.port": "config.set"}
    assert resolve() == Config()


def test_set_nested_contexts_restore_in_order() -> None:
    with config.set(network__channel="tcp"):
        with config.set({"network": {"channel": "mpi"}}):
            assert resolve()["network.channel"] == "mpi"
        assert resolve()["network.channel"] == "tcp"
    assert resolve()["network.channel"] == "auto"


def test_set_restores_on_error() -> None:
    with pytest.raises(RuntimeError), config.set(master__port=9):
        raise RuntimeError
    assert resolve()["master.port"] == 0


def test_plain_set_lasts_and_is_process_wide() -> None:
    config.set({"master.kill_grace": 1})
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(resolve()["master.kill_grace"]))
    thread.start()
    thread.join()
    assert seen == [1.0]
    assert resolve()["master.kill_grace"] == 1.0
    config.set({"master.kill_grace": 2})
    assert resolve()["master.kill_grace"] == 2.0


def test_set_inside_a_plain_set_restores_to_it() -> None:
    config.set(master__port=1)
    with config.set(master__port=2):
        assert resolve()["master.port"] == 2
    assert resolve()["master.port"] == 1


def test_plain_set_inside_a_context_outlives_it() -> None:
    with config.set(master__port=2):
        config.set(master__port=1, master__kill_grace=5)
    cfg = resolve()
    assert (cfg["master.port"], cfg["master.kill_grace"]) == (1, 5.0)


def test_contexts_may_exit_out_of_order() -> None:
    first = config.set(master__port=1)
    second = config.set(master__port=2)
    with first, second:
        pass  # exits second, then first; now exit them the other way round
    third, fourth = config.set(master__port=3), config.set(master__port=4)
    third.__exit__(None, None, None)
    assert resolve()["master.port"] == 4
    fourth.__exit__(None, None, None)
    assert resolve()["master.port"] == 0


def test_plain_set_in_a_loop_does_not_pile_up() -> None:
    for port in range(100):
        config.set(master__port=port, master__kill_grace=1)
    assert len(_config._set_layer) <= 2
    assert resolve()["master.port"] == 99


def test_a_rejected_set_applies_nothing() -> None:
    with pytest.raises(ConfigError, match=r"master\.port"):
        config.set({"network.channel": "tcp", "master.port": "x"})
    assert resolve() == Config()


def test_set_from_many_threads() -> None:
    def work(port: int) -> None:
        for _ in range(200):
            with config.set(master__port=port):
                resolve()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _config._set_layer == []
    assert resolve()["master.port"] == 0


# ------------------------------------------------------------------------- unknown keys

Case = tuple[Callable[[], object], str]
"""A call that meets an unknown key, and the source its error must name."""


def _from_user_file(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    path = _write(conf_dir / "config.yaml", "network:\n  chanel: tcp\n")
    return resolve, f"file {path}"


def _from_cluster_file(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    path = _write(conf_dir / "slurm.yaml", "network.chanel: tcp\n")
    return lambda: resolve("slurm"), f"file {path}"


def _from_env(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    monkeypatch.setenv("TWISTER2_NETWORK__CHANEL", "tcp")
    return resolve, "environment variable TWISTER2_NETWORK__CHANEL"


def _from_set(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return lambda: config.set(network__chanel="tcp"), "config.set"


def _from_overrides(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return lambda: resolve(overrides={"network.chanel": "tcp"}), _config.OVERRIDES_SOURCE


def _from_cli(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return lambda: parse_assignment("network.chanel=tcp"), "--config network.chanel=tcp"


def _from_dict(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return lambda: Config.from_dict({"network.chanel": "tcp"}), "Config.from_dict"


def _from_with_overrides(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    return lambda: Config().with_overrides({"network.chanel": "tcp"}), "Config.with_overrides"


@pytest.mark.parametrize(
    "source",
    [
        _from_user_file,
        _from_cluster_file,
        _from_env,
        _from_set,
        _from_overrides,
        _from_cli,
        _from_dict,
        _from_with_overrides,
    ],
)
def test_unknown_key_names_source_and_suggests(
    source: Callable[[Path, pytest.MonkeyPatch], Case],
    conf_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call, where = source(conf_dir, monkeypatch)
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == (
        f"unknown config key 'network.chanel' (from {where}); did you mean network.channel?"
    )


def test_unknown_key_suggests_the_same_key_in_another_section() -> None:
    with pytest.raises(ConfigError, match=r"did you mean .*master\.port"):
        resolve(overrides={"network.port": 1})


def test_unknown_key_with_nothing_close_lists_the_sections() -> None:
    with pytest.raises(ConfigError, match="the known sections are ") as info:
        config.set(zzz__qqq=1)
    listed = str(info.value).split("the known sections are ")[1]
    for section in ("job", "logging", "master", "network", "resource"):
        assert section in listed


def test_a_section_is_not_a_key(conf_dir: Path) -> None:
    _write(conf_dir / "config.yaml", "resource:\n  mpi: /usr/bin/mpiexec\n")
    with pytest.raises(ConfigError, match=r"'resource\.mpi' .* is a section") as info:
        resolve()
    assert "resource.mpi.mpiexec" in str(info.value)


# --------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("master.port", True, "an int in [0, 65535]"),
        ("master.port", "5", "an int in [0, 65535]"),
        ("master.port", 5.0, "an int in [0, 65535]"),
        ("master.port", None, "an int in [0, 65535]"),
        ("master.failure_timeout", "10", "a float > 0"),
        ("master.failure_timeout", False, "a float > 0"),
        ("network.recv_timeout", "never", "a float > 0 or null"),
        ("network.channel", "udp", "one of 'auto', 'tcp', 'mpi'"),
        ("logging.level", "debug", "one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
        ("master.interface", 127, "a str"),
        ("job.log_dir", 5, "a path (a str)"),
        ("resource.mpi.hostfile", ["h"], "a path (a str) or null"),
        ("resource.mpi.extra_args", "-x FOO", "a list of str"),
        ("resource.mpi.extra_args", ["-n", 4], "a list of str"),
    ],
)
def test_wrong_type_names_key_expected_value_and_source(
    key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(overrides={key: value})
    assert str(info.value) == (
        f"config key {key!r} (from {_config.OVERRIDES_SOURCE}) must be {expected}, "
        f"got {value!r} ({type(value).__name__})"
    )


def test_wrong_type_in_a_file_names_the_file(conf_dir: Path) -> None:
    path = _write(conf_dir / "config.yaml", "network: {channel: udp}\n")
    with pytest.raises(ConfigError, match=re.escape(f"(from file {path})")):
        resolve()


def test_accepted_conversions(tmp_path: Path) -> None:
    cfg = Config.from_dict(
        {
            "master.failure_timeout": 3,
            "resource.mpi.extra_args": ("-x", "FOO"),
            "resource.mpi.hostfile": tmp_path / "hosts",
            "network.recv_timeout": None,
        }
    )
    assert cfg["master.failure_timeout"] == 3.0
    assert isinstance(cfg["master.failure_timeout"], float)
    assert cfg["resource.mpi.extra_args"] == ["-x", "FOO"]
    assert cfg["resource.mpi.hostfile"] == str(tmp_path / "hosts")
    assert cfg["network.recv_timeout"] is None


def test_set_rejects_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        config.set([("master.port", 1)])  # type: ignore[arg-type]


# ----------------------------------------------------------------------- parse_assignment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("master.failure_timeout=5", ("master.failure_timeout", 5)),
        ("master.port=7000", ("master.port", 7000)),
        ("network.channel=tcp", ("network.channel", "tcp")),
        (" network.channel = tcp ", ("network.channel", "tcp")),
        ("master.interface=0.0.0.0", ("master.interface", "0.0.0.0")),
        ("resource.mpi.extra_args=[-x, A=B]", ("resource.mpi.extra_args", ["-x", "A=B"])),
        ("resource.mpi.hostfile=null", ("resource.mpi.hostfile", None)),
        ("resource.mpi.mpiexec=", ("resource.mpi.mpiexec", "")),
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, Any]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["network.channel", "=tcp", ""])
def test_parse_assignment_needs_key_equals_value(text: str) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment(text)


def test_parse_assignment_validates_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_assignment("master.port=yes")
    assert str(info.value) == (
        "config key 'master.port' (from --config master.port=yes) "
        "must be an int in [0, 65535], got True (bool)"
    )


def test_parse_assignment_result_feeds_resolve() -> None:
    overrides = dict(parse_assignment(t) for t in ["master.port=1", "network.channel=mpi"])
    cfg = resolve(overrides=overrides)
    assert (cfg["master.port"], cfg["network.channel"]) == (1, "mpi")


# --------------------------------------------------------------------------------- Config


def test_round_trip_through_to_dict(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(conf_dir / "config.yaml", "resource: {mpi: {hostfile: ~/hosts, extra_args: [-a]}}\n")
    monkeypatch.setenv("TWISTER2_NETWORK__RECV_TIMEOUT", "null")
    cfg = resolve(overrides={"master.port": 4})
    flat = cfg.to_dict()
    assert set(flat) == set(EXPECTED_DEFAULTS)
    assert flat["resource.mpi.hostfile"] == "~/hosts"  # expanded by whoever reads it
    assert flat["job.log_dir"] == "~/.twister2/jobs"
    again = Config.from_dict(json.loads(json.dumps(flat)))
    assert again == cfg
    assert again.to_dict() == flat


def test_pickle_keeps_values_and_sources() -> None:
    cfg = resolve(overrides={"master.port": 4})
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg
    assert again.sources() == cfg.sources()


def test_paths_are_expanded_when_read(home: Path) -> None:
    cfg = Config.from_dict({"job.scratch_dir": "~/scratch"})
    assert cfg["job.scratch_dir"] == str(home / "scratch")
    assert dict(cfg)["job.scratch_dir"] == str(home / "scratch")
    assert cfg.to_dict()["job.scratch_dir"] == "~/scratch"


def test_config_is_immutable() -> None:
    cfg = Config()
    with pytest.raises(TypeError):
        cfg["master.port"] = 1  # type: ignore[index]
    cfg["resource.mpi.extra_args"].append("-x")
    cfg.to_dict()["resource.mpi.extra_args"].append("-y")
    cfg.sources()["master.port"] = "me"
    assert cfg["resource.mpi.extra_args"] == []
    assert cfg.sources() == {}


def test_with_overrides_returns_a_new_config() -> None:
    cfg = resolve(overrides={"master.port": 1})
    other = cfg.with_overrides({"network.channel": "tcp"}, source="twister2.run(config=...)")
    assert cfg["network.channel"] == "auto"
    assert other["network.channel"] == "tcp"
    assert other["master.port"] == 1
    assert other.sources() == {
        "master.port": _config.OVERRIDES_SOURCE,
        "network.channel": "twister2.run(config=...)",
    }


def test_unknown_key_lookup_is_a_key_error_with_a_suggestion() -> None:
    cfg = Config()
    with pytest.raises(KeyError, match=r"did you mean network\.channel"):
        cfg["network.chanel"]
    assert cfg.get("network.chanel") is None
    assert cfg.get("network.channel") == "auto"
    assert "network.chanel" not in cfg
    assert "network.channel" in cfg


def test_repr_shows_what_differs_from_the_defaults() -> None:
    assert repr(Config()) == f"Config({len(EXPECTED_DEFAULTS)} defaults)"
    cfg = Config.from_dict({"network.channel": "tcp"})
    assert repr(cfg) == f"Config(network.channel='tcp', {len(EXPECTED_DEFAULTS) - 1} defaults)"


def _rewrite_docs_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_BEGIN, 1)
    tail = rest.split(TABLE_END, 1)[1]
    table = _packaged_schema().markdown_table()
    DOCS.write_text(head + TABLE_BEGIN + table + TABLE_END + tail, encoding="utf-8")
    print(f"rewrote the key table in {DOCS}")


if __name__ == "__main__":
    _rewrite_docs_table()
