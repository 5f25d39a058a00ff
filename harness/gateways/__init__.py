"""The gateway suite: web servers judged as FastCGI clients."""
