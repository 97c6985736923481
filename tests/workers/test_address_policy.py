"""Media may be fetched from public addresses only, in every form an address can take."""

from __future__ import annotations

import ipaddress

import pytest

from workers.address_policy import embedded_ipv4, refusal

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",  # IPv4-compatible metadata address
    "64:ff9b::10.0.0.1",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",  # NAT64 metadata address
    "2002:0a00:0001::1",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "fec0::1",  # site-local
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "64:ff9b::8.8.8.8",  # NAT64 of a public address
    "2002:0808:0808::1",  # 6to4 of a public address
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_special_addresses_are_refused_in_every_form(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed_in_every_form(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_reason_names_the_ipv4_address_inside() -> None:
    reason = refusal(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    assert reason is not None and "169.254.169.254" in reason


def test_an_allow_listed_network_admits_the_ipv4_address_inside_an_ipv6_form() -> None:
    internal = [ipaddress.ip_network("10.20.0.0/16")]
    assert refusal(ipaddress.ip_address("10.20.1.5"), internal) is None
    assert refusal(ipaddress.ip_address("64:ff9b::10.20.1.5"), internal) is None
    assert refusal(ipaddress.ip_address("10.21.1.5"), internal) is not None


def test_loopback_and_unspecified_are_not_read_as_ipv4_compatible() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) is None
    assert embedded_ipv4(ipaddress.IPv6Address("::")) is None
    assert embedded_ipv4(ipaddress.IPv6Address("::7f00:1")) == ipaddress.IPv4Address("127.0.0.1")
