#!/bin/sh
# install-brokers.sh: installs the brokers that natspipe's transports are
# tested and benchmarked against and that no Go module brings: RabbitMQ
# (Debian's rabbitmq-server, with its Erlang), for the amqp transport.
# NATS needs nothing: the tests embed nats-server.
#
# Idempotent: a broker already installed is left as it is. Needs root, or
# sudo, to install. The tests start private nodes of their own
# (internal/rabbittest), so no system RabbitMQ service is left running:
# one the package started is stopped.
#
#   scripts/install-brokers.sh
set -eu

RABBIT=/usr/lib/rabbitmq/bin/rabbitmq-server

say() { echo "install-brokers: $*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		say "needs root or sudo to run: $*" >&2
		exit 1
	fi
}

if [ -x "$RABBIT" ]; then
	say "rabbitmq-server already installed"
else
	if ! command -v apt-get >/dev/null 2>&1; then
		say "no apt-get: install RabbitMQ by other means, or set RABBITMQ_URL to a broker" >&2
		exit 1
	fi
	say "installing rabbitmq-server"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server
	if [ ! -x "$RABBIT" ]; then
		say "rabbitmq-server installed, but $RABBIT is missing" >&2
		exit 1
	fi
fi

# A system node (the package's service, user rabbitmq) is stopped: the
# tests' nodes are private, and a system one would only take memory and
# port 5672. Nodes of other users (the tests' own) are left alone.
if command -v pgrep >/dev/null 2>&1 && id rabbitmq >/dev/null 2>&1; then
	if pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
		say "stopping the system RabbitMQ node"
		as_root service rabbitmq-server stop >/dev/null 2>&1 || true
		i=0
		while pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1 && [ "$i" -lt 20 ]; do
			sleep 0.5
			i=$((i + 1))
		done
		if pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
			as_root pkill -KILL -u rabbitmq -x beam.smp || true
		fi
	fi
	# The epmd daemon the system node started.
	if pgrep -u rabbitmq -x epmd >/dev/null 2>&1; then
		as_root pkill -u rabbitmq -x epmd || true
	fi
fi

version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || true)
erlang=$(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || true)
say "rabbitmq-server ${version:-(version unknown)}, erlang-base ${erlang:-(version unknown)}: $RABBIT"
