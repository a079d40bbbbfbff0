"""Model registry: cache location, name resolution, and downloads against a real local HTTP server."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rifestream.cli import models as models_cli
from rifestream.errors import RifestreamError
from rifestream.model import IFNet, IFNetConfig, load_model, registry, save_model
from rifestream.model.ifnet import OFFICIAL_ARCHS

# --------------------------------------------------------------------------- fixtures


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, mode)``; modes: full, half, half-nolength."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "no such file")
            return
        body, mode = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode != "half-nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "full":
            self.wfile.write(body)
        else:  # the server dies half way: send half the bytes, then close the connection
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.routes = {}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "rs-home"
    monkeypatch.setenv("RIFESTREAM_HOME", str(home))
    monkeypatch.delenv(registry.BASE_URL_ENV, raising=False)
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "no-weights-shipped")
    return home


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A random-weights v4.6 checkpoint written the way official releases are (module. prefix)."""
    torch.manual_seed(0)
    model = IFNet(OFFICIAL_ARCHS["v4.6"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path.read_bytes(), state


def _entry(url: str, body: bytes, *, size: bool = True, name: str = "v4.6") -> registry.OfficialModel:
    return registry.OfficialModel(
        name=name,
        arch=name,
        url=url,
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body) if size else None,
    )


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rifestream")
    models_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --------------------------------------------------------------------------- the registry itself


def test_every_official_entry_names_a_known_architecture_and_a_well_formed_pin():
    assert {"v4.6", "v4.22.lite", "v4.25", "v4.25.lite", "v4.26"} <= set(registry.OFFICIAL_MODELS)
    for name, entry in registry.OFFICIAL_MODELS.items():
        assert entry.name == name
        assert entry.arch in OFFICIAL_ARCHS
        assert entry.url.startswith("https://")
        assert entry.filename == f"flownet_{name}.pkl"
        assert entry.sha256 is None or (len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0)
        assert entry.size is None or entry.size > 1_000_000


def test_names_resolve_with_or_without_the_v_and_base_url_override(monkeypatch):
    monkeypatch.delenv(registry.BASE_URL_ENV, raising=False)
    assert registry.find_official("4.25").name == "v4.25"
    assert registry.find_official("v4.99") is None
    monkeypatch.setenv(registry.BASE_URL_ENV, "http://mirror.example/models/")
    assert registry.get_official("v4.26").url == "http://mirror.example/models/flownet_v4.26.pkl"
    assert registry.get_official("v4.26").sha256 == registry.OFFICIAL_MODELS["v4.26"].sha256


def test_cache_dir_honours_rifestream_home_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RIFESTREAM_HOME", str(tmp_path / "rs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.cache_dir() == tmp_path / "rs" / "models"
    monkeypatch.delenv("RIFESTREAM_HOME")
    assert registry.cache_dir() == tmp_path / "xdg" / "rifestream" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert registry.cache_dir() == tmp_path / "user" / ".cache" / "rifestream" / "models"


# --------------------------------------------------------------------------- downloads


def test_good_download_is_cached_and_loads(server, home, official_checkpoint):
    body, state = official_checkpoint
    server.routes["/m/flownet_v4.6.pkl"] = (body, "full")
    entry = _entry(f"{server.base}/m/flownet_v4.6.pkl", body)

    path = registry.download(entry, progress=True)

    assert path == home / "models" / "flownet_v4.6.pkl"
    assert _files(home / "models") == ["flownet_v4.6.pkl"]
    assert path.read_bytes() == body
    model = load_model(path)
    assert model.config == OFFICIAL_ARCHS["v4.6"]
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key
    # resolve_model now finds it by name, with the architecture to load it as
    assert registry.resolve_model("v4.6") == (path, "v4.6")
    # a second call uses the verified cached copy instead of fetching again
    server.routes.clear()
    assert registry.download(entry) == path


def test_wrong_checksum_is_an_error_and_leaves_nothing(server, home):
    body = os.urandom(300_000)
    server.routes["/flownet_v4.6.pkl"] = (body, "full")
    entry = replace(_entry(f"{server.base}/flownet_v4.6.pkl", body), sha256="0" * 64)
    with pytest.raises(RifestreamError, match="sha256") as err:
        registry.download(entry, progress=False)
    assert hashlib.sha256(body).hexdigest() in str(err.value)
    assert _files(home / "models") == []


def test_server_gone_mid_download_is_an_error_and_leaves_nothing(server, home):
    body = os.urandom(1_000_000)
    server.routes["/flownet_v4.6.pkl"] = (body, "half")
    entry = _entry(f"{server.base}/flownet_v4.6.pkl", body, size=False)
    with pytest.raises(RifestreamError, match=r"stopped after 500000 of 1000000 bytes"):
        registry.download(entry, progress=False)
    assert _files(home / "models") == []


def test_truncated_download_without_content_length_fails_on_size(server, home):
    body = os.urandom(400_000)
    server.routes["/flownet_v4.6.pkl"] = (body, "half-nolength")
    entry = _entry(f"{server.base}/flownet_v4.6.pkl", body)
    with pytest.raises(RifestreamError, match=r"gave 200000 bytes, expected 400000"):
        registry.download(entry, progress=False)
    assert _files(home / "models") == []


def test_http_error_bad_url_and_refused_connection_are_one_clear_error(server, home):
    body = b"x" * 1000
    with pytest.raises(RifestreamError, match="HTTP 404"):
        registry.download(_entry(f"{server.base}/missing.pkl", body), progress=False)
    with pytest.raises(RifestreamError, match="unknown url type"):
        registry.download(_entry("no-scheme/flownet_v4.6.pkl", body), progress=False)
    # a port nothing listens on: take one from a socket we close again
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RifestreamError, match="refused"):
        registry.download(_entry(f"http://127.0.0.1:{port}/flownet_v4.6.pkl", body), progress=False, timeout=5)
    assert _files(home / "models") == []


def test_interrupted_download_removes_its_temporary_file(home, monkeypatch):
    seen: list[Path] = []

    def fetch_then_interrupt(entry, out, progress, timeout):
        out.write(b"partial")
        seen.extend((home / "models").iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "_fetch", fetch_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        registry.download(_entry("http://127.0.0.1:9/flownet_v4.6.pkl", b"abc"), progress=False)
    assert len(seen) == 1 and seen[0].name.endswith(".part")
    assert _files(home / "models") == []


def test_entry_without_published_hash_needs_sha256(server, home):
    body = os.urandom(50_000)
    server.routes["/flownet_v4.22.lite.pkl"] = (body, "full")
    entry = replace(_entry(f"{server.base}/flownet_v4.22.lite.pkl", body, name="v4.22.lite"), sha256=None)
    with pytest.raises(RifestreamError, match=r"rifestream models download v4\.22\.lite --sha256 HEX"):
        registry.download(entry, progress=False)
    assert _files(home / "models") == []
    with pytest.raises(RifestreamError, match="64 hex digits"):
        registry.download(entry, sha256="abc", progress=False)
    path = registry.download(entry, sha256=hashlib.sha256(body).hexdigest().upper(), progress=False)
    assert path.read_bytes() == body


def test_user_sha256_cannot_override_a_pin(home):
    entry = registry.get_official("v4.6")
    with pytest.raises(RifestreamError, match="disagrees with the registry's pin"):
        registry.download(entry, sha256="1" * 64, progress=False)


def test_corrupt_cached_file_is_reported_not_used(server, home):
    body = os.urandom(10_000)
    entry = _entry(f"{server.base}/flownet_v4.6.pkl", body)
    (home / "models").mkdir(parents=True)
    (home / "models" / "flownet_v4.6.pkl").write_bytes(b"not it")
    with pytest.raises(RifestreamError, match="--force"):
        registry.download(entry, progress=False)
    server.routes["/flownet_v4.6.pkl"] = (body, "full")
    assert registry.download(entry, force=True, progress=False).read_bytes() == body


# --------------------------------------------------------------------------- resolve_model


def _tiny_safetensors(path: Path, name: str = "rifestream-v1") -> IFNetConfig:
    config = IFNetConfig(name, (16, 8), (2, 1), head=False, pad=8)
    save_model(IFNet(config), path)
    return config


def test_resolve_model_cases(tmp_path, home):
    shipped = tmp_path / "weights"
    shipped.mkdir()
    # None without a shipped default: the error says what to do
    with pytest.raises(RifestreamError, match=r"--model NAME\|PATH is required until the default model ships") as err:
        registry.resolve_model(None, shipped_dir=shipped)
    assert "rifestream models download" in str(err.value)
    # a path is that file
    weights = tmp_path / "mine.pkl"
    weights.write_bytes(b"whatever")
    assert registry.resolve_model(str(weights), shipped_dir=shipped) == (weights, None)
    with pytest.raises(RifestreamError, match="no such file"):
        registry.resolve_model(str(tmp_path / "absent.pkl"), shipped_dir=shipped)
    with pytest.raises(RifestreamError, match="not a file"):
        registry.resolve_model(str(tmp_path), shipped_dir=shipped)
    # an official name not downloaded: the exact command
    with pytest.raises(RifestreamError, match=r"run `rifestream models download v4\.26`"):
        registry.resolve_model("v4.26", shipped_dir=shipped)
    with pytest.raises(RifestreamError, match=r"rifestream models download v4\.22\.lite --sha256 HEX"):
        registry.resolve_model("v4.22.lite", shipped_dir=shipped)
    # an official name that is cached (found through RIFESTREAM_HOME)
    (home / "models").mkdir(parents=True)
    cached = home / "models" / "flownet_v4.26.pkl"
    cached.write_bytes(b"weights")
    assert registry.resolve_model("4.26", shipped_dir=shipped) == (cached, "v4.26")
    # shipped names, and the default once it ships
    default = shipped / f"{registry.DEFAULT_MODEL}.safetensors"
    config = _tiny_safetensors(default, registry.DEFAULT_MODEL)
    _tiny_safetensors(shipped / "rifestream-small.safetensors", "rifestream-small")
    assert registry.resolve_model("rifestream-small", shipped_dir=shipped) == (
        shipped / "rifestream-small.safetensors",
        None,
    )
    path, version = registry.resolve_model(None, shipped_dir=shipped)
    assert (path, version) == (default, None)
    assert load_model(path).config == config
    with pytest.raises(RifestreamError, match=rf"known: rifestream-small, {registry.DEFAULT_MODEL}, v4\.6"):
        registry.resolve_model("v5-best", shipped_dir=shipped)
    # a name the package does not carry is refused like any unknown name
    with pytest.raises(RifestreamError, match=r"^--model rifestream-v3: not a file and not a known model name"):
        registry.resolve_model("rifestream-v3", shipped_dir=shipped)
    # the option that named it, where that is not --model (`rifestream train --init`)
    with pytest.raises(RifestreamError, match=r"^--init v5-best: not a file and not a known model name"):
        registry.resolve_model("v5-best", shipped_dir=shipped, option="--init")
    # ... unless a file by that name is shipped after all
    _tiny_safetensors(shipped / "rifestream-v3.safetensors", "rifestream-v3")
    assert registry.resolve_model("rifestream-v3", shipped_dir=shipped) == (shipped / "rifestream-v3.safetensors", None)


# --------------------------------------------------------------------------- CLI


def test_cli_list_info_and_download(server, home, tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "weights"
    shipped.mkdir()
    _tiny_safetensors(shipped / "rifestream-v1.safetensors")
    _tiny_safetensors(shipped / f"{registry.DEFAULT_MODEL}.safetensors", registry.DEFAULT_MODEL)
    _tiny_safetensors(shipped / f"{registry.DEFAULT_CPU_MODEL}.safetensors", registry.DEFAULT_CPU_MODEL)
    monkeypatch.setattr(registry, "SHIPPED_DIR", shipped)
    body = os.urandom(20_000)
    server.routes["/rel/flownet_v4.22.lite.pkl"] = (body, "full")
    monkeypatch.setenv(registry.BASE_URL_ENV, f"{server.base}/rel")

    assert _cli(["models", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["rifestream-v1"][1:3] == ["shipped", "rifestream-v1"]
    assert lines["rifestream-v1"][-1] == "packaged"  # not a default: nothing after its cache state
    # the default column: which model a job with no --model runs on a GPU and on a CPU
    assert lines[registry.default_model_for("cuda")][-2:] == ["packaged", "gpu"]
    assert lines[registry.default_model_for("cpu")][-2:] == ["packaged", "cpu"]
    assert out.splitlines()[0].split()[-1] == "DEFAULT"
    assert lines["v4.6"][1:] == ["official", "v4.6", "20.3", "MiB", "no"]
    assert lines["v4.25"][-2:] == ["?", "no"]
    assert str(home / "models") in out

    with pytest.raises(RifestreamError, match="--sha256 HEX"):
        _cli(["models", "download", "v4.22.lite"])
    digest = hashlib.sha256(body).hexdigest()
    assert _cli(["models", "download", "v4.22.lite", "--sha256", digest, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(home / "models" / "flownet_v4.22.lite.pkl")
    assert "downloaded and verified" in captured.err

    assert _cli(["models", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("v4.22.lite"))
    assert row.split()[-1] == "yes"

    assert _cli(["models", "info", "v4.25"]) == 0
    out = capsys.readouterr().out
    assert registry.OFFICIAL_MODELS["v4.25"].sha256 in out
    assert "blocks 192/128/96/64/32, scales 16/8/4/2/1, feature head, pad 64" in out
    assert f"{server.base}/rel/flownet_v4.25.pkl" in out
    assert "rifestream models download v4.25`" in out

    assert _cli(["models", "info", "rifestream-v1"]) == 0
    assert "blocks 16/8, scales 2/1, no head, pad 8" in capsys.readouterr().out
    with pytest.raises(RifestreamError, match="not a known model"):
        _cli(["models", "info", "nothing-here"])


# --------------------------------------------------------------------------- issue 19, item 13
def test_load_model_takes_the_version_with_or_without_the_v(tmp_path, official_checkpoint):
    """vs-rife and Practical-RIFE users write version="4.6"; both spellings load the same weights."""
    body, state = official_checkpoint
    path = tmp_path / "flownet.pkl"
    path.write_bytes(body)
    for version in ("v4.6", "4.6", " 4.6 "):
        model = load_model(path, version=version)
        assert model.config == OFFICIAL_ARCHS["v4.6"]
        assert torch.equal(model.state_dict()["block0.conv0.0.0.weight"], state["block0.conv0.0.0.weight"])
    with pytest.raises(RifestreamError, match=r"unknown version 'v4\.7'; known: v4\.6"):
        load_model(path, version="4.7")


def _plain_pickle(path: Path) -> Path:
    """A pickle holding an object that is not a tensor (what torch.save of a whole model writes)."""
    import pickle

    path.write_bytes(pickle.dumps({"model": argparse.Namespace(weights=[1.0])}, protocol=4))
    return path


def test_a_plain_pickle_is_refused_in_one_line_without_torch_warnings(tmp_path):
    import warnings

    path = _plain_pickle(tmp_path / "model.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RifestreamError) as err:
            load_model(path)
    assert caught == []  # torch's "Detected pickle protocol 4" UserWarning is silenced
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: not a safe PyTorch weights file"), text
    assert "In PyTorch 2.6" not in text  # not torch's paragraph about its defaults


@pytest.mark.parametrize("kind", ["plain-pickle", "truncated", "not-a-checkpoint", "empty"])
def test_train_resume_refuses_a_file_that_is_not_a_safe_checkpoint_in_one_line(tmp_path, capsys, kind):
    from rifestream.cli import main

    out = tmp_path / "run"
    out.mkdir()
    last = out / "last.pt"
    if kind == "plain-pickle":
        _plain_pickle(last)
    elif kind == "truncated":
        torch.save({"config": {}, "model": {"w": torch.zeros(64)}, "optimizer": {}, "step": 3}, last)
        last.write_bytes(last.read_bytes()[:200])
    elif kind == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(4)}, last)
    else:
        last.write_bytes(b"")
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"rifestream train: error: {last}: not a "), err
    assert "drop --resume" in lines[0] and "Traceback" not in err


def test_models_info_shows_a_mirror_url_without_its_credentials(home, monkeypatch, capsys):
    monkeypatch.setenv(registry.BASE_URL_ENV, "https://mirror-user:MIRRORSECRET@mirror.example/rife?token=TOKENSECRET")
    assert _cli(["models", "info", "v4.6"]) == 0
    out = capsys.readouterr().out
    assert "https://***@mirror.example/rife?token=***" in out
    assert "MIRRORSECRET" not in out and "TOKENSECRET" not in out and "mirror-user" not in out


def test_models_help_names_the_shipped_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _cli(["models", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "once it ships" not in text
    assert f"{registry.default_model_for('cuda')}, the default on a GPU" in text
    assert f"{registry.default_model_for('cpu')}, the default on a CPU" in text
