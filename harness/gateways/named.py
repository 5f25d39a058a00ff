"""The named gateways: real web servers from Debian, each in one configuration people deploy.

A gateway is a web server in front of the suite's scripted FastCGI application: it listens on a free
loopback port and passes every request, whatever its path, to the application at APP_HOST:APP_PORT.
Each class is one configuration, made from a template in fixtures/gateways/ (@@NAME@@ placeholders:
PREFIX, HTTP_PORT, APP_HOST, APP_PORT, READ_TIMEOUT in seconds, READ_TIMEOUT_MS). The server is
started, stopped and cleaned up as the capture servers are (harness/capture/webservers.py): in a
process group of its own, in a fresh prefix directory, logging to stderr.

`keeps_backend_connections` says what was seen on the wire, not what the documentation promises:
True when the configuration sets FCGI_KEEP_CONN and sends further requests on the same connection
(tests/test_gateway_named.py checks it against every server).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.capture.webservers import (
    Apache,
    H2o,
    Lighttpd,
    Nginx,
    WebServer,
    WebServerUnavailable,
    _first_line,
)

GATEWAY_TEMPLATES = Path(__file__).resolve().parents[2] / "fixtures" / "gateways"
DEFAULT_READ_TIMEOUT = 4


class WebServerGateway(WebServer):
    """One web server configuration in front of the suite's FastCGI application."""

    template_dir = GATEWAY_TEMPLATES
    # The web server: nginx, apache2, lighttpd, h2o, haproxy or caddy.
    server = ""
    # The section of scripts/debian-packages.txt that installs it.
    package_section = ""
    # Whether this configuration reuses its FastCGI connections (FCGI_KEEP_CONN and further requests).
    keeps_backend_connections = False
    # Seconds the gateway waits for the application's output before it gives up on a request.
    read_timeout = DEFAULT_READ_TIMEOUT

    def __init__(self, app_host: str, app_port: int, *, read_timeout: int | None = None) -> None:
        super().__init__(app_host, app_port)
        if read_timeout is not None:
            self.read_timeout = read_timeout

    def placeholders(self) -> dict[str, str]:
        values = super().placeholders()
        values["READ_TIMEOUT"] = str(self.read_timeout)
        values["READ_TIMEOUT_MS"] = str(self.read_timeout * 1000)
        return values


class NginxGateway(WebServerGateway, Nginx):
    name = "nginx"
    server = "nginx"
    package_section = "nginx"
    template = "nginx.conf"
    config_summary = "fastcgi_pass HOST:PORT (no upstream keepalive); include fastcgi_params"


class NginxKeepConnGateway(WebServerGateway, Nginx):
    name = "nginx-keepconn"
    server = "nginx"
    package_section = "nginx"
    template = "nginx-keepconn.conf"
    config_summary = "upstream keepalive 8; fastcgi_keep_conn on; include fastcgi_params"
    keeps_backend_connections = True


class ApacheGateway(WebServerGateway, Apache):
    name = "apache2"
    server = "apache2"
    package_section = "apache2"
    template = "apache2.conf"
    config_summary = "mpm_event; ProxyPass / fcgi://HOST:PORT/ (mod_proxy_fcgi's default: no reuse)"


class ApacheReuseGateway(WebServerGateway, Apache):
    name = "apache2-reuse"
    server = "apache2"
    package_section = "apache2"
    template = "apache2-reuse.conf"
    config_summary = "mpm_event; ProxyPass / fcgi://HOST:PORT/ enablereuse=on"
    keeps_backend_connections = True


class LighttpdGateway(WebServerGateway, Lighttpd):
    name = "lighttpd"
    server = "lighttpd"
    package_section = "lighttpd"
    template = "lighttpd.conf"
    config_summary = 'mod_fastcgi; fastcgi.server = ( "/" => (( host, port, "check-local" => "disable" )) )'


class H2oGateway(WebServerGateway, H2o):
    name = "h2o"
    server = "h2o"
    package_section = "h2o"
    template = "h2o.conf"
    config_summary = "fastcgi.connect: {host, port, type: tcp} (no fastcgi.timeout.keepalive)"


class H2oKeepaliveGateway(WebServerGateway, H2o):
    name = "h2o-keepalive"
    server = "h2o"
    package_section = "h2o"
    template = "h2o-keepalive.conf"
    config_summary = "fastcgi.connect: {host, port, type: tcp}; fastcgi.timeout.keepalive: 10000"
    keeps_backend_connections = True


class HaproxyGateway(WebServerGateway):
    name = "haproxy"
    server = "haproxy"
    package = "haproxy"
    package_section = "haproxy"
    binary = "haproxy"
    template = "haproxy.cfg"
    config_summary = "fcgi-app at its defaults (keep-conn on, no mpxs-conns); use-fcgi-app; server proto fcgi"
    # HAProxy's fcgi-app turns keep-conn on by default.
    keeps_backend_connections = True

    @classmethod
    def available(cls) -> bool:
        return shutil.which("haproxy") is not None or Path("/usr/sbin/haproxy").exists()

    @classmethod
    def executable(cls) -> str:
        found = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(found).exists():
            raise WebServerUnavailable(f"{cls.name} is not installed (apt-get install {cls.package})")
        return found

    @classmethod
    def version(cls) -> str:
        return _first_line([cls.executable(), "-v"], r"HAProxy version \S+").replace(" version", "", 1)

    def argv(self, config: Path) -> list[str]:
        # -db: in the foreground, the process group's leader, as stop() expects.
        return ["{binary}", "-db", "-f", str(config)]


class HaproxyNoKeepConnGateway(HaproxyGateway):
    name = "haproxy-no-keepconn"
    template = "haproxy-no-keepconn.cfg"
    config_summary = "fcgi-app with no option keep-conn; use-fcgi-app; server proto fcgi"
    keeps_backend_connections = False


class HaproxyMpxsGateway(HaproxyGateway):
    name = "haproxy-mpxs"
    template = "haproxy-mpxs.cfg"
    config_summary = "fcgi-app with option mpxs-conns, option max-reqs 8 (keep-conn on); use-fcgi-app"


class CaddyGateway(WebServerGateway):
    name = "caddy"
    server = "caddy"
    package = "caddy"
    package_section = "caddy"
    binary = "caddy"
    template = "caddy.Caddyfile"
    config_summary = "reverse_proxy HOST:PORT { transport fastcgi }; admin off; auto_https off"
    subdirs = ("home", "config", "data")

    @classmethod
    def version(cls) -> str:
        # Debian's build says "2.6.2"; upstream's says "v2.6.2 h1:...".
        return "caddy v" + _first_line([cls.executable(), "version"], r"\d+\.\d+\.\d+\S*")

    def environment(self) -> dict[str, str]:
        # Caddy keeps its data and configuration under HOME or the XDG directories: the prefix's.
        assert self.prefix is not None
        return {**super().environment(), "HOME": f"{self.prefix}/home",
                "XDG_CONFIG_HOME": f"{self.prefix}/config", "XDG_DATA_HOME": f"{self.prefix}/data"}

    def argv(self, config: Path) -> list[str]:
        return ["{binary}", "run", "--config", str(config), "--adapter", "caddyfile"]


NAMED_GATEWAYS: dict[str, type[WebServerGateway]] = {
    cls.name: cls
    for cls in (
        NginxGateway,
        NginxKeepConnGateway,
        ApacheGateway,
        ApacheReuseGateway,
        LighttpdGateway,
        H2oGateway,
        H2oKeepaliveGateway,
        HaproxyGateway,
        HaproxyNoKeepConnGateway,
        CaddyGateway,
        HaproxyMpxsGateway,
    )
}
