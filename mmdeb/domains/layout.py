"""Where a domain's Mailman lives on a list host, and the names in it that mmdeb relies on.

The only place these are spelt: the templates get them from build/render.py's context.
Standard library only: the domain packages ship it with mmdeb-import (render.IMPORTER_MODULES),
which reads old trees laid out this way on the list host, on bullseye's Python 3.9 too.
"""

from __future__ import annotations

from dataclasses import dataclass

PACKAGE_PREFIX = "mailman-"  # a domain's package: mailman-<domain>
CORE_PACKAGE_PREFIX = "mailmen-core-"  # shared mode's core: mailmen-core-<flavour>, which its domains depend on
PREFIX_ROOT = "/var/lib/mailmen"  # each domain's Mailman prefix is PREFIX_ROOT/<domain>
ETC_ROOT = "/etc/mailmen"  # each domain's mm_cfg.py (a conffile) and what postinst writes
LOG_ROOT = "/var/log/mailmen"
LOCK_ROOT = "/run/lock/mailmen"  # on a tmpfs: tmpfiles.d makes it at boot
MM_CFG = "mm_cfg.py"
# One file per installed domain package, named by the domain: what Exim's local_domains and
# mailmen-common's trigger read to know the installed domains.
INSTALLED_DOMAINS = "/usr/share/mailmen/domains"

# mailmen-common: what every domain package depends on, once per host (hookup to the MTA and web
# servers, DKIM signing).
COMMON_PACKAGE = "mailmen-common"
DKIM_COMMAND = "/usr/sbin/mailmen-dkim"
DKIM_DIR = "dkim"  # under a domain's etc_dir: the selector file and <selector>.private
DKIM_SELECTOR_FILE = "selector"
DKIM_KEY_BITS = 2048  # RSA: what every receiver verifies
DKIM_STATE = "/var/lib/mailmen-dkim"  # the signer's tables, made from the installed domains' keys
# The opendkim instance that signs for Postfix: its configuration (a conffile of mailmen-common)
# and its socket, under Postfix's queue directory, where the chrooted smtpd reaches it.
DKIM_SIGNER = "mailmen-dkim"  # the service
DKIM_SIGNER_CONF = f"{ETC_ROOT}/opendkim.conf"
POSTFIX_QUEUE = "/var/spool/postfix"
DKIM_SOCKET_DIR = "mailmen-dkim"  # under POSTFIX_QUEUE
DKIM_SOCKET = f"{DKIM_SOCKET_DIR}/opendkim.sock"
# The header fields a list message's DKIM signature covers, by either signer: RFC 6376's
# list (5.4) with the list fields, and List-Unsubscribe-Post, which RFC 8058 (section 4) requires.
SIGNED_HEADERS = ("From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc", "MIME-Version",
                  "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References", "List-Id", "List-Help",
                  "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe", "List-Post", "List-Owner",
                  "List-Archive")
# mailmen-common's Postfix maps, whatever the number of domains: one alias map per mail group
# (Postfix runs a pipe with the uid and primary gid of its alias database's owner), one virtual
# map and one map of the domains, made from the data/aliases and data/virtual-mailman of each
# member domain: those whose postinst left a file in POSTFIX_MEMBERS, holding their mail group.
POSTFIX_MAPS_DIR = "/var/lib/mailmen-postfix"
POSTFIX_MEMBERS = f"{POSTFIX_MAPS_DIR}/members"
POSTFIX_MAPS_COMMAND = "/usr/sbin/mailmen-postfix"  # writes them (mailmen-common); Mailman's MTA hook runs it
# What a domain package's maintainer scripts activate: mailmen-common then hooks the installed
# domains up to the MTA and web servers, and reloads each server once per dpkg run.
HOOKUP_TRIGGER = "mailmen-hookup"
HOOKUP_COMMAND = "/usr/sbin/mailmen-hookup"  # what the trigger runs; dpkg-reconfigure of a domain runs it at once
# The admin's one command for every domain (listhost/mailmen.py): ls, DOMAIN COMMAND, find-member...
MAILMEN_COMMAND = "/usr/sbin/mailmen"
MAILMEN_SUBCOMMANDS = ("ls", "find-member", "remove-member", "backup", "restore")  # else its first word is a domain
# What its backup of a domain holds of the prefix (the rest is the package's), with /etc/mailmen/<domain>.
BACKUP_PARTS = ("lists", "archives", "data", "qfiles")
# Debian's publicsuffix package's copy of publicsuffix.org's list, which Mailman's DMARC lookup
# reads to find a poster's organizational domain (mm_cfg.py), never fetching it.
PUBLIC_SUFFIX_LIST = "/usr/share/publicsuffix/public_suffix_list.dat"

# systemd units, shipped once by mailmen-common: a domain is an instance of a template, named by
# unit_instance(). Its runners: the always-on service (mailmanctl), or, on demand, the path unit
# that starts the drain service when a queue gets mail. The jobs' timers and the retry timer are
# the host's; each run starts the job's template service once per installed domain.
ALWAYS_ON_UNIT = "mailmen@.service"
DRAIN_UNIT = "mailmen-drain@.service"
QUEUE_UNIT = "mailmen-queue@.path"
JOBS_UNIT = "mailmen-jobs@.service"  # instance: a job's name, or RETRY_JOB
RETRY_JOB = "retry"
JOB_UNIT_PREFIX = "mailmen-"  # a job's timer and template service: mailmen-<job>.timer, mailmen-<job>@.service
SYSV_SCRIPT = "mailmen"  # /etc/init.d/mailmen: every domain's mailmanctl, where systemd does not run
JOBS_COMMAND = f"/usr/share/{COMMON_PACKAGE}/mailmen-jobs"  # what the timers and cron.d run
# The functions of every domain package's postinst, which sources it after setting the domain's
# variables (as debconf's confmodule); mailmen-common ships it.
DOMAIN_POSTINST = f"/usr/share/{COMMON_PACKAGE}/domain-postinst"
UNIT_NAME_MAX = 255  # systemd's limit on a unit's name


def unit_instance(name: str) -> str:
    """systemd-escape's form of a domain name: lossless, so each domain has its own instance."""
    return "".join(ch if ch.isalnum() or ch in "_." and (ch != "." or index) else f"\\x{ord(ch):02x}"
                   for index, ch in enumerate(name))


def instance_unit(template: str, name: str) -> str:
    """The instance of template (e.g. QUEUE_UNIT) for the domain name."""
    before, after = template.split("@", 1)
    return f"{before}@{unit_instance(name)}{after}"


# Private archives closed to other local users, as Mailman's installation manual says for
# shared hosts: the web server's user owns archives/private (the private CGI and the public
# archives' links go through it), Mailman's group writes it, and others cannot enter.
PRIVATE_ARCHIVES = "archives/private"  # under a domain's prefix
WEB_SERVER_USER = "www-data"  # Debian's apache2, nginx and fcgiwrap run as it
PRIVATE_ARCHIVES_MODE = 0o2770
SITE_LIST = "mailman"  # Mailman's default MAILMAN_SITE_LIST, which the packages keep
# Mailman/Defaults.py's *QUEUE_DIR, under the prefix's qfiles/: those that a runner serves as
# soon as mail arrives; the retry queue, whose messages wait there for their time; the shunt
# queue, which keeps the messages that failed, for the admin.
RUNNER_QUEUES = ("in", "out", "virgin", "commands", "bounces", "archive", "news")
RETRY_QUEUE = "retry"
SHUNT_QUEUE = "shunt"
# The queues that hold mail not handled yet.
WAITING_QUEUES = (*RUNNER_QUEUES, RETRY_QUEUE, SHUNT_QUEUE)


@dataclass(frozen=True)
class DomainPaths:
    """A domain's package and paths, from its (normalised) name."""

    name: str

    @property
    def package(self) -> str:
        return f"{PACKAGE_PREFIX}{self.name}"

    @property
    def prefix(self) -> str:
        return f"{PREFIX_ROOT}/{self.name}"

    @property
    def etc_dir(self) -> str:
        return f"{ETC_ROOT}/{self.name}"

    @property
    def log_dir(self) -> str:
        return f"{LOG_ROOT}/{self.name}"

    @property
    def lock_dir(self) -> str:
        return f"{LOCK_ROOT}/{self.name}"

    @property
    def mm_cfg(self) -> str:
        """mm_cfg.py, the conffile that the prefix's Mailman/mm_cfg.py links to."""
        return f"{self.etc_dir}/{MM_CFG}"

    @property
    def dkim_dir(self) -> str:
        """The domain's DKIM keys and selector, written by mailmen-dkim; readable by the signer only."""
        return f"{self.etc_dir}/{DKIM_DIR}"

    @property
    def private_archives(self) -> str:
        return f"{self.prefix}/{PRIVATE_ARCHIVES}"

    @property
    def site_list_dir(self) -> str:
        """The site list's directory: Mailman does not run without it."""
        return f"{self.prefix}/lists/{SITE_LIST}"

    @property
    def site_list_password(self) -> str:
        """The site list's password, also the site password: written by postinst, root's only."""
        return f"{self.etc_dir}/site-list-password"

    @property
    def apache_tls_conf(self) -> str:
        """Apache's certificate and key lines for this domain, written by postinst from debconf."""
        return f"{self.etc_dir}/apache-tls.conf"

    @property
    def nginx_tls_conf(self) -> str:
        """nginx's certificate and key lines for this domain, written by postinst from debconf."""
        return f"{self.etc_dir}/nginx-tls.conf"
