"""The network configuration (configs/home1.toml, configs/home2.toml) and the CLI.

The derived per-node configurations must agree with each other (the S-CSCF
the HSS assigns is the S-CSCF that runs, the iFC points at the port the PS
listens on ...). The CLI runs in-process through ``main([...])``: user
mistakes end with exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from presence_ims import __version__
from presence_ims.cli import main
from presence_ims.config import ConfigError, NetworkSettings, load
from presence_ims.sip import SipURI, parse_uri

ROOT = Path(__file__).resolve().parents[2]
HOME1 = ROOT / "configs" / "home1.toml"
HOME2 = ROOT / "configs" / "home2.toml"

VALID_SUBSCRIBER = """
[[subscribers]]
impi = "x@lab.net"
impus = [["sip:x@lab.net"]]
digest_password = "pw"
auth_schemes = ["digest"]
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PRESENCE_IMS_* variable of the caller's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("PRESENCE_IMS_"):
            monkeypatch.delenv(name)
    yield


def listen(spec: str) -> tuple[str, str, int]:
    transport, host, port = spec.rsplit(":", 2)
    return transport, host, int(port)


def sip(uri: str) -> SipURI:
    parsed = parse_uri(uri)
    assert isinstance(parsed, SipURI)
    return parsed


# -- loading -------------------------------------------------------------------------------------------


def test_home1_loads() -> None:
    s = load(HOME1)
    assert s.domain == "home1.net"
    assert s.net_transport == "tls"
    assert [sub.impi for sub in s.subscribers] == ["alice@home1.net", "bob@home1.net"]
    assert s.subscribers[0].impus == (("sip:alice@home1.net", "tel:+15550001"),)
    assert s.subscribers[0].anonymous_impu == "sip:anon-a1@home1.net"
    assert s.pcscf.allow_aka_without_ipsec is False
    assert s.ps.initial_rules == {
        "sip:alice@home1.net": ["sip:bob@home1.net"],
        "sip:bob@home1.net": ["sip:alice@home1.net"],
    }
    assert s.ps_uri == "sip:ps.home1.net:5065;transport=tls"
    assert s.scscf_uri == "sip:scscf.home1.net:6060;transport=tls"
    assert s.icscf_uri == "sip:icscf.home1.net:4060;transport=tls"


def test_home2_loads() -> None:
    s = load(HOME2)
    assert s.domain == "home2.net"
    assert [sub.impi for sub in s.subscribers] == ["carol@home2.net"]
    assert (s.pna.enabled, s.pea.enabled, s.sim.enabled) == (False, False, False)
    assert s.ps_uri == "sip:ps.home2.net:5075;transport=tls"


@pytest.mark.parametrize("path", [HOME1, HOME2], ids=["home1", "home2"])
def test_derived_node_configs_agree(path: Path) -> None:
    s = load(path)
    hss, icscf, scscf, pcscf, ps = (
        s.hss_config(),
        s.icscf_config(),
        s.scscf_config(),
        s.pcscf_config(),
        s.ps_config(),
    )
    t = s.net_transport
    # the S-CSCF the HSS assigns is the one that runs, and the I-CSCF falls back to it
    assert hss.scscf_name == scscf.server_name == icscf.default_scscf == s.scscf_uri
    scscf_uri = sip(scscf.server_name)
    assert listen(scscf.sip[0]) == (t, s.host_of("scscf"), scscf_uri.port)
    assert scscf_uri.host == scscf.name and scscf_uri.transport == t
    # everybody reaches the HSS where it listens, under its Diameter name
    assert icscf.hss == scscf.hss == f"{hss.listen_address}:{hss.listen_port}"
    assert icscf.hss_name == scscf.hss_name == hss.origin_host
    assert hss.realm == s.domain
    # the I-CSCF the P-CSCF and S-CSCF forward to is where it listens
    assert pcscf.icscf == scscf.icscf == s.icscf_uri
    icscf_uri = sip(s.icscf_uri)
    assert listen(icscf.sip[0]) == (t, s.host_of("icscf"), icscf_uri.port)
    assert icscf_uri.host == icscf.name
    # the iFC of every subscriber points at the port and transport the PS listens on
    ps_transport, ps_host, ps_port = listen(ps.sip[0])
    assert ps_host == s.host_of("ps")
    assert hss.subscribers and all(sub.ifc for sub in hss.subscribers)
    for sub in hss.subscribers:
        [ifc] = sub.ifc
        target = sip(ifc.server_name)
        assert (target.host, target.port, target.transport) == (ps.name, ps_port, ps_transport)
        assert ifc.methods == ("PUBLISH", "SUBSCRIBE")
        assert ifc.event == "presence.*"
        assert ifc.session_cases == (1, 2)
    # the P-CSCF's network side speaks the network transport; the S-CSCF's reg watchers
    # are the P-CSCF and the PNA of this network
    assert listen(pcscf.network)[0] == t
    assert scscf.reg_watchers == (f"sip:{pcscf.name}", f"sip:pna.{s.domain}")
    # the PS trusts the S-CSCF (ISC), the PNA and the PEA by their certificate names
    assert {p.name: (p.tls_names, p.source_class) for p in ps.peers} == {
        "scscf": ((scscf.name,), "ue"),
        "pna": ((f"pna.{s.domain}",), "network"),
        "pea": ((f"pea.{s.domain}",), "external"),
    }
    assert ps.trust == "network"
    assert ps.domain == pcscf.domain == scscf.domain == icscf.domain == s.domain


def test_ps_config_knows_every_impu_and_the_aliases() -> None:
    ps = load(HOME1).ps_config()
    assert set(ps.known_users or ()) == {
        "sip:alice@home1.net",
        "tel:+15550001",
        "sip:anon-a1@home1.net",
        "sip:bob@home1.net",
        "tel:+15550002",
    }
    assert ps.aliases == {
        "tel:+15550001": "sip:alice@home1.net",
        "tel:+15550002": "sip:bob@home1.net",
    }
    assert ps.credentials == {"alice@home1.net": "alice-demo", "bob@home1.net": "bob-demo"}
    assert ps.identities["alice@home1.net"] == (
        "sip:alice@home1.net",
        "tel:+15550001",
        "sip:anon-a1@home1.net",
    )
    assert ps.store == "sqlite:" + str(Path("var/home1") / "ps.db")
    assert ps.xcap == "http:127.0.0.1:8080"
    assert ps.min_expires == 60
    pea = next(p for p in ps.peers if p.name == "pea")
    assert pea.elements == ("person",)
    assert pea.presentities == ("sip:*@home1.net",)


def test_the_two_networks_point_at_each_other_and_share_no_port() -> None:
    one, two = load(HOME1), load(HOME2)
    assert one.network.peer_networks == {"home2.net": two.icscf_uri}
    assert two.network.peer_networks == {"home1.net": one.icscf_uri}
    assert one.scscf_config().peer_networks == {"home2.net": two.icscf_uri}

    def ports(s: NetworkSettings) -> list[int]:
        p = s.pcscf
        found = [s.hss.port, s.icscf.port, s.scscf.port, s.ps.port]
        found += [p.port, p.network_port, p.port_c, p.port_s]
        return found + ([s.ps.xcap_port] if s.ps.xcap_port is not None else [])

    both = ports(one) + ports(two)
    assert len(both) == len(set(both)), both
    # each network resolves the other's node names
    assert one.hosts()["icscf.home1.net"] == "127.0.0.1"
    assert one.network.hosts == {"*.home2.net": "127.0.0.1"}
    assert two.network.hosts == {"*.home1.net": "127.0.0.1"}


def test_environment_overrides_a_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESENCE_IMS_PCSCF__ALLOW_AKA_WITHOUT_IPSEC", "true")
    s = load(HOME1)
    assert s.pcscf.allow_aka_without_ipsec is True
    assert s.pcscf_config().allow_aka_without_ipsec is True
    # the rest of the file still applies
    assert s.pcscf.port == 5060 and s.domain == "home1.net" and len(s.subscribers) == 2


def test_environment_override_keeps_the_derived_configs_consistent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRESENCE_IMS_PS__PORT", "5999")
    monkeypatch.setenv("PRESENCE_IMS_NETWORK__TLS", "false")
    s = load(HOME1)
    assert s.ps_config().sip == ("tcp:127.0.0.1:5999",)
    for sub in s.hss_config().subscribers:
        assert sub.ifc[0].server_name == "sip:ps.home1.net:5999;transport=tcp"


def test_environment_value_of_the_wrong_type_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRESENCE_IMS_PCSCF__ALLOW_AKA_WITHOUT_IPSEC", "maybe")
    with pytest.raises(ConfigError) as info:
        load(HOME1)
    assert "pcscf.allow_aka_without_ipsec" in str(info.value)


def test_environment_section_that_is_not_json_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRESENCE_IMS_NETWORK", "{not json")
    with pytest.raises(ConfigError) as info:
        load(HOME1)
    assert "network" in str(info.value)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("[ps]\nport = 70000\n", ["ps.port: Input should be less than or equal to 65535"]),
        (
            "[ps]\nport = 'x'\n[scscf]\nmin_expires = 0\n",
            [
                "ps.port: Input should be a valid integer",
                "scscf.min_expires: Input should be greater",
            ],
        ),
        (
            "[pcscf]\nallow_null_encrytpion = true\n",
            ["pcscf.allow_null_encrytpion: Extra inputs are not permitted"],
        ),
        ("[network]\ntls = 'perhaps'\n", ["network.tls: Input should be a valid boolean"]),
        (
            VALID_SUBSCRIBER.replace('["digest"]', '["aka"]'),
            ["subscribers.0: Value error, AKA needs k and exactly one of op or opc"],
        ),
        (
            VALID_SUBSCRIBER.replace('[["sip:x@lab.net"]]', '[["x@lab.net"]]'),
            ["subscribers.0: Value error, IMPU 'x@lab.net' is not a sip:, sips: or tel: URI"],
        ),
        (
            VALID_SUBSCRIBER + "k = 'zz'\n",
            ["subscribers.0.k: Value error, key must be 32 hex digits"],
        ),
        ("[bogus]\nx = 1\n", ["bogus: Extra inputs are not permitted"]),
    ],
)
def test_invalid_file_names_the_field(tmp_path: Path, text: str, problems: list[str]) -> None:
    path = tmp_path / "net.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: {len(problems)} problem(s) in the configuration:"
    assert len(lines) == len(problems) + 1
    for problem in problems:
        assert any(line.startswith(f"  {problem}") for line in lines[1:]), (problem, lines)


def test_a_valid_minimal_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[network]\ndomain = 'lab.net'\ntls = false\n" + VALID_SUBSCRIBER)
    s = load(path)
    assert (s.domain, s.net_transport, len(s.subscribers)) == ("lab.net", "tcp", 1)
    assert s.ps_uri == "sip:ps.lab.net:5065;transport=tcp"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nowhere.toml")
    assert str(info.value) == f"config file not found: {tmp_path / 'nowhere.toml'}"
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path)  # a directory


@pytest.mark.parametrize(
    "data",
    [b"[network\ndomain = 'x'\n", b"domain = \n", b"\xff\xfe[network]\n"],
    ids=["table", "value", "not-utf8"],
)
def test_bad_toml_is_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load(path)


def test_a_failed_load_leaves_no_state_behind(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[ps]\nport = 'x'\n")
    with pytest.raises(ConfigError):
        load(path)
    assert load(None).ps.port == 5065  # the defaults, not the failed file


# -- the command line ----------------------------------------------------------------------------------


def test_config_check_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(HOME1)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{HOME1}: valid (home1.net, 2 subscriber(s), network side tls)\n"
    assert err == ""
    assert main(["config", "check", str(HOME2)]) == 0
    assert (
        capsys.readouterr().out
        == f"{HOME2}: valid (home2.net, 1 subscriber(s), network side tls)\n"
    )


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("presence-ims: ")
    return err


def test_config_check_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "net.toml"
    path.write_text("[ps]\nport = 'x'\n[scscf]\nmin_expires = 0\n")
    assert main(["config", "check", str(path)]) == 2
    err = _one_error_line(capsys)
    assert f"{path}: 2 problem(s) in the configuration:" in err
    assert "ps.port: " in err and "scscf.min_expires: " in err


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "config file not found"),
        (b"[ps\n", "not valid TOML"),
        (b"\xff[ps]\n", "not valid TOML: not UTF-8"),
    ],
)
def test_config_check_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes | None, expected: str
) -> None:
    path = tmp_path / "net.toml"
    if data is not None:
        path.write_bytes(data)
    assert main(["config", "check", str(path)]) == 2
    assert expected in _one_error_line(capsys)


def test_config_check_bad_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PRESENCE_IMS_PCSCF__ALLOW_AKA_WITHOUT_IPSEC", "maybe")
    assert main(["config", "check", str(HOME1)]) == 2
    assert "pcscf.allow_aka_without_ipsec" in _one_error_line(capsys)


# REFERENCE.md, Milenage test set 1 (TS 35.208)
SET1 = {
    "k": "465b5ce8b199b49faa5f0a2ee238a6bc",
    "rand": "23553cbe9637a89d218ae64dae47bf35",
    "sqn": "ff9bb4d0b607",
    "amf": "b9b9",
    "op": "cdc202d5123e20f62b6d676ac72cb318",
    "opc": "cd63cb71954a9f4e48a5994e37a02baf",
}
SET1_OUT = {
    "opc": "cd63cb71954a9f4e48a5994e37a02baf",
    "mac_a": "4a9ffac354dfafb3",
    "mac_s": "01cfaf9ec4e871e9",
    "res": "a54211d5e3ba50bf",
    "ck": "b40ba9a3c58b2a05bbf0d987b21bf8cb",
    "ik": "f769bcd751044604127672711c6d3441",
    "ak": "aa689c648370",
    "ak_star": "451e8beca43b",
}


def aka_args(**values: str | None) -> list[str]:
    merged: dict[str, str | None] = {k: v for k, v in SET1.items() if k != "opc"}
    merged.update(values)
    args = ["aka"]
    for name, value in merged.items():
        if value is not None:
            args += [f"--{name}", value]
    return args


@pytest.mark.parametrize("variant", ["op", "opc", "upper-case"])
def test_aka_test_set_1(variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    if variant == "op":
        args = aka_args()
    elif variant == "opc":
        args = aka_args(op=None, opc=SET1["opc"])
    else:
        args = aka_args(k=SET1["k"].upper(), op=SET1["op"].upper())
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == SET1_OUT


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"k": "zz" * 16}, "--k is not hex: 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'"),
        ({"k": SET1["k"][:-2]}, "--k must be 16 bytes (32 hex digits)"),
        ({"sqn": "ff9bb4d0b6"}, "--sqn must be 6 bytes (12 hex digits)"),
        ({"amf": "b9"}, "--amf must be 2 bytes (4 hex digits)"),
        ({"rand": SET1["rand"] + "00"}, "--rand must be 16 bytes (32 hex digits)"),
        ({"op": "12"}, "--op must be 16 bytes (32 hex digits)"),
        ({"opc": SET1["opc"]}, "give exactly one of --op and --opc"),
        ({"op": None}, "give exactly one of --op and --opc"),
    ],
)
def test_aka_bad_values(
    values: dict[str, str | None], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(aka_args(**values)) == 2
    assert _one_error_line(capsys) == f"presence-ims: {message}\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["aka", "--k", SET1["k"]], "the following arguments are required"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["config"], "the following arguments are required: config_command"),
        ([], "the following arguments are required: command"),
        (["config", "check"], "the following arguments are required: file"),
    ],
)
def test_bad_arguments_exit_2_without_traceback(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert expected in err
    assert "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"presence-ims {__version__}\n"


def test_ctrl_c_before_the_loop_runs_is_exit_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C while a command still imports its node (before its loop handles signals)."""
    from presence_ims import cli

    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_config_check", interrupted)
    assert cli.main(["config", "check", "x.toml"]) == 130


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--store", "bogus"], "unknown store 'bogus'"),
        (["--store", "bogus", "--workers", "2"], "unknown store 'bogus'"),
        (["--sip", "garbage"], "--sip: Value error, bad listen address 'garbage'"),
        (["--workers", "0"], "--workers: Input should be greater than or equal to 1"),
    ],
)
def test_bad_ps_options_are_one_line_and_exit_2(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["node", "ps", *options]
    if "--sip" not in options:
        args += ["--sip", "udp:127.0.0.1:0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
