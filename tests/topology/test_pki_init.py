"""``presence-ims pki init``: the PKI made once, ahead of the nodes, which then only read it."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from composelab import COMPOSE_CONFIG
from cryptography import x509

from presence_ims.cli import main
from presence_ims.config import NetworkSettings, load
from presence_ims.nodes.runner import ROLES, make_tls
from presence_ims.pki_cli import init_pki, node_problem
from presence_ims.security import pki


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NetworkSettings:
    monkeypatch.setenv("PRESENCE_IMS_NETWORK__PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("PRESENCE_IMS_NETWORK__STATE_DIR", str(tmp_path / "state"))
    return load(COMPOSE_CONFIG)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["pki", "init", "--config", str(COMPOSE_CONFIG), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_makes_every_node_certificate(
    settings: NetworkSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    directory = settings.pki_dir
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    for role in ROLES:
        name = settings.name(role)
        cert = x509.load_pem_x509_certificate((directory / f"{name}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
        assert set(san.get_values_for_type(x509.IPAddress)) == {
            ipaddress.ip_address(settings.host_of(role)), ipaddress.ip_address("127.0.0.1"),
        }
        assert (directory / f"{name}.key").stat().st_mode & 0o077 == 0
        assert f"created  {name}" in out
    assert "(created)" in out.splitlines()[0]
    assert out.splitlines()[-1] == f"pki ready: {len(ROLES)} node certificate(s) in {directory}"


def test_init_is_idempotent_and_nodes_only_read(
    settings: NetworkSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)[0] == 0
    before = snapshot(settings.pki_dir)
    code, out, _ = run(capsys)
    assert code == 0
    assert "(kept)" in out.splitlines()[0]
    assert out.count("kept     ") == len(ROLES)
    assert snapshot(settings.pki_dir) == before
    # each node started alone (`node ROLE`) finds all it needs and writes nothing
    for role in ROLES:
        tls = make_tls(settings, [role])
        assert set(tls.server) == set(tls.client) == {role}
    assert snapshot(settings.pki_dir) == before


def test_dir_option_overrides_the_config(
    settings: NetworkSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--dir", str(tmp_path / "elsewhere"))
    assert code == 0
    assert (tmp_path / "elsewhere" / "ca.pem").is_file()
    assert not settings.pki_dir.exists()
    assert str(tmp_path / "elsewhere") in out


def test_unusable_node_files_are_reissued(
    settings: NetworkSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)[0] == 0
    d = settings.pki_dir
    before = snapshot(d)
    # scscf: signed by some other CA; pcscf: key gone; hss: a certificate without its address
    other = pki.ensure_node(tmp_path / "other", "home1.net", "scscf.home1.net", ["10.201.60.12"])
    (d / "scscf.home1.net.pem").write_bytes(other.cert.read_bytes())
    (d / "scscf.home1.net.key").write_bytes(other.key.read_bytes())
    (d / "pcscf.home1.net.key").unlink()
    (d / "hss.home1.net.pem").unlink()
    pki.ensure_node(d, "home1.net", "hss.home1.net")  # this CA, but no IP SAN
    code, out, _ = run(capsys)
    assert code == 0
    assert "reissued scscf.home1.net  10.201.60.12, 127.0.0.1  (not issued by this CA)" in out
    assert "reissued pcscf.home1.net  10.201.60.14, 127.0.0.1  (no key)" in out
    assert "(lacks address 10.201.60.10, 127.0.0.1)" in out
    after = snapshot(d)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {
        f"{n}.home1.net.{ext}" for n in ("scscf", "pcscf", "hss") for ext in ("pem", "key")
    }
    when = dt.datetime.now(dt.UTC)
    for role in ROLES:
        assert node_problem(d, settings.name(role), (settings.host_of(role), "127.0.0.1"), when) is None


def test_expiring_certificate_is_renewed(settings: NetworkSettings) -> None:
    first = init_pki(settings)
    assert {e.action for e in first.nodes} == {"created"}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=800)  # inside RENEW_BEFORE of 825 days
    second = init_pki(settings, now=later)
    assert {e.action for e in second.nodes} == {"reissued"}
    assert {e.reason for e in second.nodes} == {"expires soon"}
    assert not second.ca_created


def test_damaged_ca_is_never_replaced(
    settings: NetworkSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)[0] == 0
    (settings.pki_dir / "ca.key").unlink()
    before = snapshot(settings.pki_dir)
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "ca.key is missing" in err and "remove" in err
    assert snapshot(settings.pki_dir) == before
    (settings.pki_dir / "ca.key").write_text("not a key")
    code, _, err = run(capsys)
    assert code == 2 and "cannot read the CA" in err


def test_bad_input_ends_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["pki", "init", "--config", str(tmp_path / "missing.toml")]) == 2
    _, err = capsys.readouterr()
    assert err == f"presence-ims: config file not found: {tmp_path / 'missing.toml'}\n"
    monkeypatch.setenv("PRESENCE_IMS_NETWORK__PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("PRESENCE_IMS_NETWORK__HOSTS", '{"hss.home1.net": "hss.example"}')
    assert main(["pki", "init", "--config", str(COMPOSE_CONFIG)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "'hss.example' is not an IP address" in err
    assert not (tmp_path / "pki").exists()
