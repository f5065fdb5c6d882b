#!/usr/bin/env python3
"""Interop client: drive wifiprovd with Espressif's own provisioning client code.

All transport, session-establishment (sec0 / sec1 X25519+AES-CTR /
sec2 SRP6a+AES-GCM) and protobuf encoding/decoding below is done by the
third-party PyPI package ``esp-rainmaker-cli`` (module
``rmaker_tools.rmaker_prov.prov.prov_util`` and the ``rmaker_tools.common``
modules it uses).  This file only sequences those calls, polls quickly and
reports the outcome.  Nothing from that package is vendored here; install it
with ``tests/interop/setup.sh`` and run this script with the python it prints.

Output contract (for the Rust test harness):
  * exactly one JSON object on stdout per invocation (library chatter and the
    optional --verbose dumps go to stderr);
  * exit 0: success / the expected result was observed;
  * exit 1: mismatch, protocol failure, daemon unreachable or timed out;
  * exit 2: usage error or broken environment (package missing, bad args).

Examples:
  esp_client.py --addr 127.0.0.1:8080 --sec 0 version
  esp_client.py --addr 127.0.0.1:8080 --sec 1 --pop abcd1234 \\
      provision --ssid HomeNet --passphrase secret --expect connected
  esp_client.py --addr 127.0.0.1:8080 --sec 2 --username wifiprov \\
      --password abcd1234 scan
  esp_client.py --addr 127.0.0.1:8080 --sec 2 --username u --password p \\
      --patch 1 custom --endpoint custom-data --data hello
"""

import argparse
import contextlib
import io
import json
import sys
import time
import traceback

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_SETUP = 2

# Terminal Wi-Fi states as returned (as strings) by Espressif's
# config_get_status_response(): 'connected' | 'connecting' | 'disconnected'
# | 'failed' | 'unknown'.
EXPECT_CHOICES = ("connected", "auth_error", "not_found", "failed")

# RespGetStatus field 12 (`WifiAttemptFailed attempt_failed`) exists in
# newer ESP-IDF .proto files but not in the generated modules shipped by
# esp-rainmaker-cli, so it arrives as an unknown field there.
ATTEMPT_FAILED_FIELD = 12

_started = time.monotonic()


class HarnessError(Exception):
    """A failure with a stage name and an exit code."""

    def __init__(self, stage, message, code=EXIT_FAIL, **extra):
        super().__init__(message)
        self.stage = stage
        self.code = code
        self.extra = extra


class Result:
    """Accumulates the single JSON object printed at exit."""

    def __init__(self):
        self.data = {"ok": False}

    def update(self, **kw):
        self.data.update(kw)

    def emit(self, ok, code):
        self.data["ok"] = ok
        self.data["exit_code"] = code
        self.data["elapsed_ms"] = round((time.monotonic() - _started) * 1000, 1)
        out = sys.__stdout__
        out.write(json.dumps(self.data, sort_keys=True) + "\n")
        out.flush()
        return code


RESULT = Result()


def _emit_usage_error(message):
    RESULT.update(stage="usage", error=message)
    sys.exit(RESULT.emit(False, EXIT_SETUP))


class JsonArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as JSON (exit 2)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        _emit_usage_error(f"{self.prog}: {message}")


def quiet():
    """Route the library's print() chatter to stderr so stdout stays JSON."""
    return contextlib.redirect_stdout(sys.stderr)


# --------------------------------------------------------------------------
# Importing Espressif's client
# --------------------------------------------------------------------------

class Esp:
    """Handles to the third-party modules (filled by load_espressif)."""

    prov_util = None   # rmaker_tools.rmaker_prov.prov.prov_util
    prov = None        # rmaker_tools.common.prov (request/response builders)
    proto = None       # generated *_pb2 modules, as loaded by the package
    str_to_bytes = None
    version = None


def load_espressif():
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            from rmaker_tools.rmaker_prov.prov import prov_util
            from rmaker_tools.common import prov
            from rmaker_tools.common.utils.convenience import str_to_bytes
            # The package loads its *_pb2 modules as the top-level module
            # `proto` (it puts rmaker_tools/rmaker_prov on sys.path).
            import proto
            for name in ("wifi_config_pb2", "wifi_constants_pb2",
                         "wifi_scan_pb2", "wifi_ctrl_pb2", "session_pb2"):
                if not hasattr(proto, name):
                    raise ImportError(
                        f"module 'proto' ({getattr(proto, '__file__', '?')}) has no "
                        f"{name}; another package named 'proto' (e.g. proto-plus) "
                        "shadows esp-rainmaker-cli's")
    except (Exception, SystemExit) as err:
        # ImportError, protobuf gencode/runtime mismatch, ...; the package's
        # proto loader prints the error and calls sys.exit(1) itself.
        printed = captured.getvalue().strip()
        sys.stderr.write(captured.getvalue())
        detail = printed.splitlines()[-1] if isinstance(err, SystemExit) and printed \
            else f"{type(err).__name__}: {err}"
        raise HarnessError(
            "import", f"cannot import esp-rainmaker-cli: {detail}",
            code=EXIT_SETUP,
            hint="run tests/interop/setup.sh and use the python it prints",
            python=sys.executable) from err
    sys.stderr.write(captured.getvalue())
    # Raise RuntimeError instead of printing and returning None/False.
    prov_util.config_throw_except = True
    Esp.prov_util, Esp.prov, Esp.proto, Esp.str_to_bytes = prov_util, prov, proto, str_to_bytes
    try:
        from importlib.metadata import version
        Esp.version = {"esp-rainmaker-cli": version("esp-rainmaker-cli"),
                       "protobuf": version("protobuf"),
                       "cryptography": version("cryptography")}
    except Exception:  # metadata is informational only
        Esp.version = None


class TapSecurity:
    """Wraps an Espressif Security object and records decrypted plaintexts.

    The library's response parsers only return a summary (e.g. the string
    'failed'), so the harness keeps a copy of each decrypted protobuf to
    report details such as fail_reason.  All cryptography is still done by
    the wrapped object; this class only forwards.
    """

    def __init__(self, sec):
        self._sec = sec
        self.plaintexts = []

    def __getattr__(self, name):
        return getattr(self._sec, name)

    def encrypt_data(self, data):
        return self._sec.encrypt_data(data)

    def decrypt_data(self, data):
        plain = self._sec.decrypt_data(data)
        self.plaintexts.append(bytes(plain))
        return plain

    def last(self):
        return self.plaintexts[-1] if self.plaintexts else None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def _read_varint(buf, pos):
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def attempts_remaining_from_unknown(resp_get_status):
    """Best effort: field 12 (attempt_failed{attempts_remaining=1}).

    Returns None when absent.  Only used because the shipped generated
    modules predate that field.
    """
    try:
        from google.protobuf.unknown_fields import UnknownFieldSet
    except ImportError:
        return None
    try:
        for field in UnknownFieldSet(resp_get_status):
            if field.field_number != ATTEMPT_FAILED_FIELD:
                continue
            data = bytes(field.data)
            pos = 0
            while pos < len(data):
                key, pos = _read_varint(data, pos)
                if key == (1 << 3) | 0:
                    value, pos = _read_varint(data, pos)
                    return value
                if key & 7 == 0:
                    _, pos = _read_varint(data, pos)
                else:
                    return None
            return 0  # present but empty: attempts_remaining == 0
    except Exception:
        return None
    return None


def decode_status(plain):
    """Details of a RespGetStatus using the package's generated modules."""
    pb = Esp.proto.wifi_config_pb2
    consts = Esp.proto.wifi_constants_pb2
    payload = pb.WiFiConfigPayload()
    payload.ParseFromString(plain)
    rs = payload.resp_get_status
    info = {
        "msg": pb.WiFiConfigMsgType.Name(payload.msg) if payload.msg in pb.WiFiConfigMsgType.values()
        else payload.msg,
        "status": rs.status,
        "sta_state": rs.sta_state,
        "sta_state_name": _enum_name(consts.WifiStationState, rs.sta_state),
    }
    which = rs.WhichOneof("state")
    if which == "fail_reason":
        info["fail_reason"] = _enum_name(consts.WifiConnectFailedReason, rs.fail_reason)
    elif which == "connected":
        c = rs.connected
        info["connected"] = {
            "ip4_addr": c.ip4_addr,
            "auth_mode": _enum_name(consts.WifiAuthMode, c.auth_mode),
            "ssid": c.ssid.decode("utf-8", "replace"),
            "bssid": c.bssid.hex(),
            "channel": c.channel,
        }
    remaining = attempts_remaining_from_unknown(rs)
    if remaining is not None:
        info["attempts_remaining"] = remaining
    return info


def describe(err):
    """Readable one-line description of an exception."""
    text = str(err)
    if isinstance(err, RuntimeError) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def to_wire(args, text):
    """The library encodes SSID/passphrase/custom data with latin-1
    (str_to_bytes).  With --encoding utf-8 (default) hand it a str whose
    latin-1 encoding is the UTF-8 bytes, so the wire carries UTF-8 like a
    phone app would.  ASCII is unaffected either way."""
    if args.encoding == "utf-8":
        return text.encode("utf-8").decode("latin-1")
    return text


def from_wire(args, text):
    """Inverse of to_wire for strings the library decoded with latin-1."""
    if args.encoding == "utf-8":
        return text.encode("latin-1").decode("utf-8", "replace")
    return text


def _enum_name(enum, value):
    try:
        return enum.Name(value)
    except ValueError:
        return value


def _parse_json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _text(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Steps:
    """Per-stage wall-clock timings (ms) reported as `timings_ms`."""

    def __init__(self):
        self.timings = {}
        RESULT.update(timings_ms=self.timings)

    @contextlib.contextmanager
    def stage(self, name):
        t0 = time.monotonic()
        RESULT.update(stage=name)
        try:
            yield
        finally:
            self.timings[name] = round((time.monotonic() - t0) * 1000, 1)


STEPS = None


# --------------------------------------------------------------------------
# Library calls
# --------------------------------------------------------------------------

def connect(args):
    pu = Esp.prov_util
    if args.ble:
        return connect_ble(args)
    with STEPS.stage("connect"):
        try:
            with quiet():
                tp = pu.get_transport("softap", args.addr)
        except ValueError as err:  # malformed host:port from parse_host_port
            raise HarnessError("connect", str(err), code=EXIT_SETUP) from err
        except RuntimeError as err:
            raise HarnessError("connect", f"cannot reach {args.addr}: {describe(err)}") from err
        if tp is None:
            raise HarnessError("connect", "get_transport returned None")
        # get_transport() uses a 60 s socket timeout; tighten it.
        tp.conn.timeout = args.http_timeout
        if tp.conn.sock is not None:
            tp.conn.sock.settimeout(args.http_timeout)
    return tp


def connect_ble(args):
    """Espressif's BLE transport (bleak over BlueZ), found by advertised name.

    Two shims around bleak, neither touching Espressif's protocol code:
    * Their client never passes an adapter to bleak, which then takes the
      first powered adapter it lists, in no fixed order; --ble-adapter pins it
      (the tests' BlueZoo also has the device's own adapter).
    * Their client connects by address after its discovery has ended, and
      bleak then waits for the device to advertise again.  A real radio does;
      BlueZoo reports a device once per scan, unchanged, which bleak ignores.
      So the client is handed the device object the discovery found.
    """
    pu = Esp.prov_util
    import bleak
    seen = {}
    real_discover = bleak.BleakScanner.discover
    real_client = bleak.BleakClient

    async def discover(*a, **kw):
        if args.ble_adapter:
            kw.setdefault("bluez", {"adapter": args.ble_adapter})
        found = await real_discover(*a, **kw)
        for entry in found.values():
            device = entry[0] if isinstance(entry, tuple) else entry
            seen[device.address] = device
        return found

    def client(target, *a, **kw):
        return real_client(seen.get(target, target), *a, **kw)

    bleak.BleakScanner.discover = discover
    bleak.BleakClient = client
    with STEPS.stage("connect"):
        try:
            with quiet():
                tp = pu.get_transport("ble", args.ble)
        except Exception as err:  # bleak raises its own errors, RuntimeError for "not found"
            raise HarnessError("connect", f"cannot reach {args.ble}: {describe(err)}") from err
        if tp is None:
            raise HarnessError("connect", "get_transport returned None")
    return tp


def proto_ver(tp):
    pu = Esp.prov_util
    with STEPS.stage("proto_ver"):
        try:
            with quiet():
                raw = pu.get_version(tp)
        except RuntimeError as err:
            raise HarnessError("proto_ver", f"proto-ver request failed: {describe(err)}") from err
    parsed = _parse_json(raw)
    RESULT.update(proto_ver_raw=raw, proto_ver=parsed)
    return raw, parsed


def resolve_security(args, tp, info):
    """Pick sec version / sec2 patch level like Espressif's tools do."""
    sec = args.sec
    prov_info = info.get("prov", {}) if isinstance(info, dict) else {}
    if sec == "auto":
        adv = prov_info.get("sec_ver")
        if isinstance(adv, int):
            sec = adv
        elif "no_sec" in prov_info.get("cap", []):
            sec = 0
        else:
            sec = 1
        RESULT.update(sec_source="device")
    else:
        sec = int(sec)
        RESULT.update(sec_source="arg")
    patch = 0
    if sec == 2:
        if args.patch is not None:
            patch = args.patch
            RESULT.update(sec_patch_source="arg")
        else:
            with quiet():
                patch = Esp.prov_util.get_sec_patch_ver(tp, args.verbose)
            RESULT.update(sec_patch_source="device")
    RESULT.update(sec=sec, sec_patch_ver=patch if sec == 2 else None)
    return sec, patch


def open_session(args, tp, info):
    pu = Esp.prov_util
    sec_ver, patch = resolve_security(args, tp, info)
    if sec_ver == 2 and not args.username:
        raise HarnessError("session", "--sec 2 needs --username/--password", code=EXIT_SETUP)
    with STEPS.stage("session"):
        sec = pu.get_security(sec_ver, patch, args.username or "", args.password or "",
                              args.pop, args.verbose)
        if sec is None:
            raise HarnessError("session", f"invalid security version {sec_ver}", code=EXIT_SETUP)
        try:
            with quiet():
                ok = pu.establish_session(tp, sec)
        except Exception as err:  # RuntimeError from transport/security, cryptography errors
            raise HarnessError("session", f"session establishment failed: {describe(err)}") from err
        if not ok:
            raise HarnessError("session", "session establishment failed (no response)")
    return TapSecurity(sec)


def get_status(tp, sec):
    """One GetStatus round trip, via Espressif's get_wifi_config()."""
    with quiet():
        state = Esp.prov_util.get_wifi_config(tp, sec)
    detail = decode_status(sec.last()) if sec.last() is not None else {}
    detail["state"] = state
    return detail


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def cmd_version(args, tp, info):
    pu = Esp.prov_util
    caps = {}
    with STEPS.stage("capabilities"), quiet():
        for cap in args.capability:
            caps[cap] = bool(pu.has_capability(tp, cap, args.verbose))
        vm = pu.version_match(tp, args.expect_ver, args.verbose) if args.expect_ver else None
    RESULT.update(capabilities=caps)
    if args.expect_ver:
        RESULT.update(version_match=bool(vm))
        if not vm:
            raise HarnessError("version", f"proto-ver does not match {args.expect_ver!r}")
    return EXIT_OK


def cmd_session(args, tp, info):
    try:
        open_session(args, tp, info)
    except HarnessError as err:
        if args.expect == "fail" and err.code == EXIT_FAIL:
            RESULT.update(session="failed", session_error=str(err))
            return EXIT_OK
        raise
    RESULT.update(session="established")
    if args.expect == "fail":
        raise HarnessError("session", "session was established but failure was expected")
    return EXIT_OK


def cmd_provision(args, tp, info):
    pu = Esp.prov_util
    sec = open_session(args, tp, info)
    with STEPS.stage("set_config"):
        try:
            with quiet():
                ok = pu.send_wifi_config(tp, sec, to_wire(args, args.ssid),
                                         to_wire(args, args.passphrase))
        except Exception as err:
            raise HarnessError("set_config", f"SetConfig failed: {describe(err)}") from err
        if not ok:
            raise HarnessError("set_config", "SetConfig returned a non-success status")
    with STEPS.stage("apply_config"):
        try:
            with quiet():
                ok = pu.apply_wifi_config(tp, sec)
        except Exception as err:
            raise HarnessError("apply_config", f"ApplyConfig failed: {describe(err)}") from err
        if not ok:
            raise HarnessError("apply_config", "ApplyConfig returned a non-success status")

    # Poll GetStatus ourselves (esp_prov / esp_rainmaker_prov sleep 5 s
    # between polls; prov_util.get_wifi_config itself does not sleep).
    history = []
    last = None
    deadline = time.monotonic() + args.timeout
    with STEPS.stage("wait_status"):
        while True:
            try:
                last = get_status(tp, sec)
            except Exception as err:
                raise HarnessError("wait_status", f"GetStatus failed: {describe(err)}",
                                   polls=len(history)) from err
            summary = {k: last[k] for k in ("state", "fail_reason", "attempts_remaining")
                       if k in last}
            if not history or history[-1] != summary:
                history.append(summary)
            if last["state"] != "connecting":
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(args.poll_interval)
    RESULT.update(status=last, state_history=history)

    outcome = outcome_of(last)
    RESULT.update(outcome=outcome)
    expected = args.expect
    if outcome == "timeout":
        raise HarnessError("wait_status", f"still {last['state']!r} after {args.timeout}s",
                           outcome=outcome, expected=expected)
    if expected == "failed":
        matched = outcome in ("auth_error", "not_found", "failed")
    else:
        matched = outcome == expected
    if not matched:
        raise HarnessError("result", f"expected {expected}, got {outcome}",
                           outcome=outcome, expected=expected)
    return EXIT_OK


def outcome_of(status):
    state = status.get("state")
    if state == "connected":
        return "connected"
    if state == "connecting":
        return "timeout"
    if state == "failed":
        return {"AuthError": "auth_error", "NetworkNotFound": "not_found"}.get(
            status.get("fail_reason"), "failed")
    return state or "unknown"  # 'disconnected' / 'unknown'


def cmd_scan(args, tp, info):
    sec = open_session(args, tp, info)
    if args.nonblocking:
        aps, count = scan_nonblocking(args, tp, sec)
    else:
        with STEPS.stage("scan"):
            try:
                with quiet():
                    aps = Esp.prov_util.scan_wifi_APs("softap", tp, sec)
            except Exception as err:
                raise HarnessError("scan", f"scan failed: {describe(err)}") from err
        if aps is None:
            raise HarnessError("scan", "scan_wifi_APs returned None")
        count = scan_count_from(sec)
    aps = [{"ssid": from_wire(args, ap["ssid"]), "rssi": ap["rssi"], "channel": ap["channel"],
            "auth": ap["auth"], "bssid": ap["bssid"]} for ap in aps]
    RESULT.update(aps=aps, result_count=count)
    if count is not None and count != len(aps):
        # The library silently drops entries whose auth mode it cannot name.
        raise HarnessError("scan", f"device reported {count} results, library decoded {len(aps)}",
                           aps=aps)
    if args.expect_ssid:
        missing = [s for s in args.expect_ssid if s not in {ap["ssid"] for ap in aps}]
        if missing:
            raise HarnessError("result", f"SSIDs not found in scan: {missing}")
    if args.expect_count is not None and len(aps) != args.expect_count:
        raise HarnessError("result", f"expected {args.expect_count} APs, got {len(aps)}")
    return EXIT_OK


def scan_count_from(sec):
    """result_count from the ScanStatus response recorded by the tap."""
    pb = Esp.proto.wifi_scan_pb2
    for plain in sec.plaintexts:
        msg = pb.WiFiScanPayload()
        try:
            msg.ParseFromString(plain)
        except Exception:
            continue
        if msg.msg == pb.TypeRespScanStatus:
            return msg.resp_scan_status.result_count
    return None


def scan_nonblocking(args, tp, sec):
    """ScanStart(blocking=false) then poll ScanStatus, with the library's
    request/response builders (prov_util only implements the blocking flow)."""
    prov = Esp.prov
    with STEPS.stage("scan"):
        try:
            with quiet():
                msg = prov.scan_start_request(sec, blocking=False, group_channels=5)
                prov.scan_start_response(sec, tp.send_data("prov-scan", msg))
                deadline = time.monotonic() + args.timeout
                while True:
                    msg = prov.scan_status_request(sec)
                    st = prov.scan_status_response(sec, tp.send_data("prov-scan", msg))
                    if st["finished"]:
                        break
                    if time.monotonic() >= deadline:
                        raise HarnessError("scan", f"scan not finished after {args.timeout}s")
                    time.sleep(args.poll_interval)
                aps, index, remaining = [], 0, st["count"]
                while remaining:
                    n = min(remaining, 100)
                    msg = prov.scan_result_request(sec, index, n)
                    aps += prov.scan_result_response(sec, tp.send_data("prov-scan", msg))
                    remaining -= n
                    index += n
        except HarnessError:
            raise
        except Exception as err:
            raise HarnessError("scan", f"scan failed: {describe(err)}") from err
    return aps, st["count"]


def cmd_custom(args, tp, info):
    """Custom endpoint exchange, as ESP-IDF's esp_prov custom_data does:
    encrypt raw bytes with the session cipher, POST, decrypt the reply."""
    sec = open_session(args, tp, info)
    with STEPS.stage("custom"):
        try:
            with quiet():
                enc = sec.encrypt_data(Esp.str_to_bytes(to_wire(args, args.data)))
                resp = tp.send_data(args.endpoint, enc.decode("latin-1"))
                plain = bytes(sec.decrypt_data(Esp.str_to_bytes(resp)))
        except Exception as err:
            raise HarnessError("custom", f"custom endpoint {args.endpoint!r} failed: {describe(err)}") from err
    RESULT.update(endpoint=args.endpoint, response=_text(plain), response_hex=plain.hex())
    if args.expect_response is not None and _text(plain) != args.expect_response:
        raise HarnessError("result", f"expected response {args.expect_response!r}, got {_text(plain)!r}")
    return EXIT_OK


def _ctrl(name, func):
    def run(args, tp, info):
        sec = open_session(args, tp, info)
        with STEPS.stage(name):
            try:
                with quiet():
                    ok = func()(tp, sec)
            except Exception as err:
                raise HarnessError(name, f"{name} failed: {describe(err)}") from err
        if sec.last() is not None:
            pb = Esp.proto.wifi_ctrl_pb2
            msg = pb.WiFiCtrlPayload()
            msg.ParseFromString(sec.last())
            RESULT.update(response={"msg": _enum_name(pb.WiFiCtrlMsgType, msg.msg),
                                    "status": msg.status})
        if not ok:
            raise HarnessError(name, f"{name} returned failure")
        return EXIT_OK
    return run


cmd_reset = _ctrl("ctrl_reset", lambda: Esp.prov_util.ctrl_reset)
cmd_reprov = _ctrl("ctrl_reprov", lambda: Esp.prov_util.ctrl_reprov)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _common(parser, suppress):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    g = parser.add_argument_group("connection / security")
    g.add_argument("--addr", default=d(None), help="daemon host:port, e.g. 127.0.0.1:8080")
    g.add_argument("--ble", default=d(None), metavar="NAME",
                   help="instead of --addr: the BLE name the daemon advertises (Espressif's BLE transport, bleak)")
    g.add_argument("--ble-adapter", default=d(None), metavar="hciN",
                   help="with --ble: the local Bluetooth adapter (default: bleak's choice)")
    g.add_argument("--sec", choices=["0", "1", "2", "auto"], default=d("auto"),
                   help="security scheme (auto: use prov.sec_ver from proto-ver)")
    g.add_argument("--pop", default=d(""), help="sec1 proof of possession")
    g.add_argument("--username", default=d(""), help="sec2 SRP6a username")
    g.add_argument("--password", default=d(""), help="sec2 SRP6a password")
    g.add_argument("--patch", type=int, choices=[0, 1], default=d(None),
                   help="sec2 patch level (default: prov.sec_patch_ver from proto-ver, else 0)")
    g.add_argument("--http-timeout", type=float, default=d(10.0),
                   help="socket timeout per HTTP request, seconds (default 10)")
    g.add_argument("--encoding", choices=["utf-8", "latin-1"], default=d("utf-8"),
                   help="how SSID/passphrase/custom data/scanned SSIDs are encoded on the "
                        "wire (library default is latin-1; default here utf-8)")
    g.add_argument("--verbose", action="store_true", default=d(False),
                   help="library debug dumps (to stderr)")


def build_parser():
    parser = JsonArgumentParser(
        prog="esp_client.py",
        description="Drive wifiprovd with Espressif's provisioning client (esp-rainmaker-cli).")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=JsonArgumentParser)
    sub.required = True

    def add(name, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p, suppress=True)  # allow global options after the command too
        return p

    p = add("version", "proto-ver query (no session): raw reply, JSON and capabilities")
    p.add_argument("--capability", action="append",
                   default=None, help="capability to test with has_capability (repeatable; "
                                      "default: wifi_scan no_pop no_sec)")
    p.add_argument("--expect-ver", help="require version_match(), e.g. v1.1")
    p.set_defaults(func=cmd_version)

    p = add("session", "establish a session only")
    p.add_argument("--expect", choices=["ok", "fail"], default="ok")
    p.set_defaults(func=cmd_session)

    p = add("provision", "SetConfig + ApplyConfig, then poll GetStatus")
    p.add_argument("--ssid", required=True)
    p.add_argument("--passphrase", default="")
    p.add_argument("--expect", choices=EXPECT_CHOICES, default="connected")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for a terminal state (default 30)")
    p.add_argument("--poll-interval", type=float, default=0.2,
                   help="seconds between GetStatus polls (default 0.2)")
    p.set_defaults(func=cmd_provision)

    p = add("scan", "Wi-Fi scan; prints the APs as JSON")
    p.add_argument("--nonblocking", action="store_true",
                   help="ScanStart(blocking=false) then poll ScanStatus "
                        "(default: prov_util.scan_wifi_APs, blocking=true)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--poll-interval", type=float, default=0.2)
    p.add_argument("--expect-ssid", action="append", help="SSID that must be listed (repeatable)")
    p.add_argument("--expect-count", type=int)
    p.set_defaults(func=cmd_scan)

    p = add("custom", "encrypted exchange on a custom endpoint")
    p.add_argument("--endpoint", required=True, help="endpoint name, e.g. custom-data")
    p.add_argument("--data", required=True, help="request payload (text)")
    p.add_argument("--expect-response", help="required response text")
    p.set_defaults(func=cmd_custom)

    p = add("reset", "prov-ctrl CtrlReset")
    p.set_defaults(func=cmd_reset)
    p = add("reprov", "prov-ctrl CtrlReprov")
    p.set_defaults(func=cmd_reprov)
    return parser


def main(argv=None):
    global STEPS
    args = build_parser().parse_args(argv)
    if args.command == "version" and not args.capability:
        args.capability = ["wifi_scan", "no_pop", "no_sec"]
    if not args.addr and not args.ble:
        _emit_usage_error("--addr HOST:PORT or --ble NAME is required")
    if args.sec == "2" and not args.username and args.command != "version":
        _emit_usage_error("--sec 2 needs --username and --password")
    STEPS = Steps()
    RESULT.update(command=args.command, addr=args.addr or args.ble)
    tp = None

    def finish(ok, code):
        # Espressif's BLE transport disconnects (and says so on stdout) when it
        # is collected at exit; end the link first, quietly, so that stdout
        # stays one JSON object and the device sees the link close.
        if tp is not None and hasattr(tp, "disconnect"):
            with quiet():
                try:
                    tp.disconnect()
                except Exception as err:  # the report matters more than the link
                    print(f"disconnect failed: {describe(err)}", file=sys.stderr)
        return RESULT.emit(ok, code)

    try:
        load_espressif()
        RESULT.update(versions=Esp.version)
        tp = connect(args)
        # Like esp_prov: query proto-ver before the session (capabilities,
        # sec_ver autodetect, sec2 patch level).
        _, info = proto_ver(tp)
        code = args.func(args, tp, info)
        RESULT.update(stage="done")
        return finish(True, code)
    except HarnessError as err:
        RESULT.update(stage=err.stage, error=str(err), **err.extra)
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        return finish(False, err.code)
    except KeyboardInterrupt:
        RESULT.update(error="interrupted")
        return finish(False, EXIT_FAIL)
    except Exception as err:  # unexpected: keep the JSON contract
        traceback.print_exc(file=sys.stderr)
        RESULT.update(error=f"unexpected {type(err).__name__}: {err}")
        return finish(False, EXIT_FAIL)

if __name__ == "__main__":
    sys.exit(main())
