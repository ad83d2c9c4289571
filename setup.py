"""Packaging for mailsrv: the library, the twistd plugin and the `mailsrv` command."""

from setuptools import find_packages, setup

setup(
    name="mailsrv",
    version="0.1.0",
    description="SMTP, submission, POP3 and IMAP mail server on Twisted, over one Maildir store",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["mailsrv", "mailsrv.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["mailsrv_plugin.py"]},
    install_requires=[
        "Twisted>=24.7,<27",
        "zope.interface>=6,<9",
        "pyOpenSSL>=24,<27",
        "service-identity>=24,<27",
        "cryptography>=42",
        "dnspython>=2.6,<3",
        "argon2-cffi>=23,<26",
        "libpass>=1.9,<2",  # the maintained passlib (imports as passlib): crypt(3) hashes from Dovecot
        "bcrypt>=4.1,<6",  # libpass's backend for {BLF-CRYPT}
        "idna>=3.4,<4",
        "dkimpy[ed25519]>=1.1,<2",  # DKIM signing and verifying, ARC; the extra is pynacl, for Ed25519 keys (RFC 8463)
        "pyspf>=2.0.14,<3",  # SPF (RFC 7208) of inbound senders
        "publicsuffixlist>=1.0,<2",  # DMARC's organizational domains (RFC 7489 3.2); ships the list
        "srslib>=0.1.4,<0.2",  # SRS rewriting of forwarded senders (pysrs does not run on Python 3.9+)
        "prometheus_client>=0.20,<1",  # /metrics of the HTTP listeners (its text format and parser)
        "acme>=2.0,<6",  # certbot's ACME client (RFC 8555), for [tls] acme; brings josepy and requests
    ],
    extras_require={"test": ["pytest>=8", "imapclient>=3", "authres>=1.2,<2"]},  # authres: dkimpy's arc_sign
    entry_points={"console_scripts": ["mailsrv = mailsrv.cli.main:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Communications :: Email :: Mail Transport Agents",
        "Topic :: Communications :: Email :: Post-Office :: IMAP",
        "Topic :: Communications :: Email :: Post-Office :: POP3",
    ],
)
