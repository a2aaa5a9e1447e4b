"""`datahub decode`: decode one payload with a catalog profile or a vendor JavaScript codec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import decoders
from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.errors import ConfigError
from decoders.javascript import CodecError, JsCodec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub decode`."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile", help="vendor/model, e.g. dragino/lht65")
    which.add_argument("--codec", type=Path, help="a vendor JavaScript codec file")
    parser.add_argument("--f-port", type=int, required=True)
    parser.add_argument("--payload-hex", required=True)
    parser.set_defaults(run=_decode)


def _decode(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payload = bytes.fromhex(args.payload_hex)
    except ValueError:
        raise ConfigError(f"--payload-hex {args.payload_hex!r} is not hex") from None
    if args.codec is not None:
        return _decode_with_codec(settings, args.codec, args.f_port, payload)
    catalog = open_catalog(settings)
    try:
        profile = catalog[args.profile]
    except KeyError:
        raise ConfigError(
            f"unknown profile {args.profile!r}; known: {', '.join(sorted(catalog))}"
        ) from None
    try:
        data = profile.decode(args.f_port, payload)
    except decoders.DecodeError as exc:
        print(json.dumps({"data": None, "warnings": [], "errors": [str(exc)]}, ensure_ascii=False))
        return 1
    print(json.dumps({"data": data, "warnings": [], "errors": []}, ensure_ascii=False))
    return 0


def _decode_with_codec(settings: Settings, codec_file: Path, f_port: int, payload: bytes) -> int:
    """Print the codec's `{data, warnings, errors}` as it returned them; 1 on errors."""
    try:
        codec = JsCodec(
            codec_file.read_text(encoding="utf-8"),
            name=str(codec_file),
            timeout_ms=settings.catalog.codec_timeout_ms,
            max_memory_bytes=settings.catalog.codec_max_memory_mb * 1024 * 1024,
        )
    except (OSError, UnicodeDecodeError, CodecError) as exc:
        raise ConfigError(f"--codec {codec_file}: {exc}") from exc
    try:
        result = codec.run(f_port, payload)
    except decoders.DecodeError as exc:
        result = {"data": None, "errors": [str(exc)]}
    finally:
        codec.close()
    result = {"data": None, "warnings": [], "errors": [], **result}
    print(json.dumps(result, ensure_ascii=False))
    return 1 if result["errors"] else 0
