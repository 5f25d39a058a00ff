"""Targets: the FastCGI applications under test.

base       the Target interface; tcp:, unix:, reference and cmd: targets
named      real servers from Debian the suite starts itself (php-fpm, go-fcgi, libfcgi, ...)
selection  parse_target: a --target spec -> a Target
process    GroupProcess: a command in its own session, watched and stopped as a whole
liveness   is the target still alive, and does it have the probe app
faults     the reference responder's fault modes

Importing the package imports none of them.
"""
