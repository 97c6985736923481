"""Which addresses media may be fetched from: public ones only, whatever form they take.

An IPv6 address can carry an IPv4 address inside it, and some of those forms reach that IPv4
address through the network (a NAT64 gateway, a 6to4 relay) or through the host's own stack
(IPv4-mapped and IPv4-compatible addresses): ``64:ff9b::169.254.169.254`` is the cloud metadata
service behind a NAT64 gateway. Python's ``is_global`` calls several of these forms global, so
every form is unwrapped here and the IPv4 address inside judged by the IPv4 rules:

- IPv4-mapped ``::ffff:a.b.c.d`` and IPv4-translated ``::ffff:0:a.b.c.d``;
- IPv4-compatible ``::a.b.c.d`` (deprecated, still routed by some stacks);
- NAT64 well-known prefix ``64:ff9b::/96`` (RFC 6052);
- 6to4 ``2002:AABB:CCDD::/48`` (RFC 3056).

Refused outright: the local-use NAT64 prefix ``64:ff9b:1::/48`` (RFC 8215: where the IPv4 part
sits is the operator's choice), Teredo ``2001::/32`` (it tunnels to an obfuscated IPv4 client),
site-local ``fec0::/10`` (deprecated, still routed inside some networks), and every private,
loopback, link-local, multicast, reserved, unspecified or documentation address of either
family. An allow-listed network admits an address when it holds the address or the IPv4
address inside it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
TEREDO = ipaddress.ip_network("2001::/32")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and may reach, if it is one of those forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64 or address in TRANSLATED:
        return low32
    if address in COMPATIBLE and int(address) > 1:  # :: and ::1 are themselves, not IPv4
        return low32
    return None


def _ipv4_refused(address: ipaddress.IPv4Address) -> bool:
    return not address.is_global or address.is_multicast or address.is_reserved


def refusal(address: IPAddress, allow_networks: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be fetched from, or None when it may."""
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    candidates: list[IPAddress] = [address] if inner is None else [address, inner]
    for network in allow_networks:
        if any(c.version == network.version and c in network for c in candidates):
            return None
    if isinstance(address, ipaddress.IPv4Address):
        return (
            "a private, loopback, link-local or reserved address"
            if _ipv4_refused(address)
            else None
        )
    if inner is not None:
        if _ipv4_refused(inner):
            return f"an IPv6 form of {inner}, a private, loopback, link-local or reserved address"
        return None
    if address in NAT64_LOCAL or address in TEREDO or address in SITE_LOCAL:
        return "a local NAT64, Teredo or site-local address"
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_site_local
    ):
        return "a private, loopback, link-local or reserved address"
    return None


__all__ = ["embedded_ipv4", "refusal"]
