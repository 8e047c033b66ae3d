#!/usr/bin/env bash
# Install HeroCtl on this machine as a server or a worker-only node, in one
# command, as root; run it again and it changes only what differs. See --help.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=install.sh

usage() {
	cat <<'EOF'
Usage: install.sh --server --bind ADDR (--peers H:P,... | --join H:P) [options]
       install.sh --agent --bind ADDR --servers H:P,... [options]

Installs HeroCtl into its own virtual environment (/opt/heroctl/venv), links
heroctld and heroctl into /usr/local/bin, writes /etc/heroctl/heroctld.toml,
keeps the secret (the cluster key, or an agent's token) in a root-only
environment file, installs the systemd unit, enables and starts it.
Running it again changes only what differs; it never replaces a cluster key.

A server (heroctld.service; it runs an agent too, unless --no-agent):
  --server
  --bind ADDR            address the API and raft listen on (0.0.0.0: every
                         address; the one to advertise then comes from --peers)
  --peers H:P,...        a new cluster: every initial server's raft address
                         (HOST:7071), this one's included
  --join H:P             or an existing cluster, through one of its servers (HOST:7070)
  --cluster-key-file F   the cluster's key: a file holding it, or another
                         server's /etc/heroctl/heroctl.env (default: a new one,
                         for the first server of a new cluster; --join needs it)
  --advertise ADDR       address the others reach this server at (default: --bind)
  --raft-bind ADDR       raft on another address than the API
  --api-port N, --raft-port N      (default 7070, 7071)
  --no-agent             a server only: no tasks run on this machine

A worker-only node (heroctl-agent.service):
  --agent
  --bind ADDR            the address task ports are published on (--bind-ip)
  --servers H:P,...      servers of the cluster (HOST:7070)
  --token-file F         an ACL token allowed "nodes: write", to enroll the node
                         (a file holding it; not needed once the node is registered)
  --ca-fingerprint sha256:HEX | --ca-file F   the cluster CA (HTTPS clusters)
  --api-port N           its agent API, for the servers (default 7072)

Both:
  --node-name NAME       (default: the host name)
  --data-dir DIR         (default /var/lib/heroctl, an agent's /var/lib/heroctl-agent)
  --drivers LIST         the drivers offered: docker (default), docker,exec
  --from DIR|WHEEL       what to install: a checkout or a built wheel (default:
                         the checkout this script is in)
  --python PY            the interpreter of the virtual environment (default python3)
  --pip-args "ARGS"      more arguments for pip ("--no-index --find-links DIR" offline)
  --venv DIR             use this existing environment (heroctld in DIR/bin)
                         instead of making /opt/heroctl/venv
  --no-start             install and enable, do not start
  --root DIR             install into DIR as if it were / (a staging root:
                         every path prefixed, systemctl not run)
  -h, --help
EOF
}

die() {
	echo "$PROG: $*" >&2
	exit 2
}
say() { echo "==> $*"; }

ROLE="" ROOT="" FROM="" PYTHON=python3 PIP_ARGS="" VENV_DIR="" NO_START=""
NODE_NAME="" DATA_DIR="" BIND="" ADVERTISE="" RAFT_BIND="" API_PORT="" RAFT_PORT=""
PEERS="" JOIN="" KEY_FILE="" NO_AGENT="" DRIVERS=""
SERVERS="" TOKEN_FILE="" CA_FINGERPRINT="" CA_FILE=""
declare -A GIVEN=()

while (($#)); do
	opt=$1 value=""
	has_value=""
	if [[ $opt == --*=* ]]; then
		value=${opt#*=} opt=${opt%%=*} has_value=1
	fi
	case $opt in
	-h | --help)
		usage
		exit 0
		;;
	--server | --agent | --no-agent | --no-start)
		[[ -z $has_value ]] || die "$opt takes no value"
		;;
	--*)
		if [[ -z $has_value ]]; then
			(($# >= 2)) || die "$opt needs a value"
			value=$2
			shift
		fi
		;;
	*) die "unexpected argument '$opt' (see --help)" ;;
	esac
	GIVEN[$opt]=1
	case $opt in
	--server | --agent)
		[[ -z $ROLE || $ROLE == "${opt#--}" ]] || die "--server or --agent, not both"
		ROLE=${opt#--}
		;;
	--no-agent) NO_AGENT=1 ;;
	--no-start) NO_START=1 ;;
	--root) ROOT=$value ;;
	--from) FROM=$value ;;
	--python) PYTHON=$value ;;
	--pip-args) PIP_ARGS=$value ;;
	--venv) VENV_DIR=$value ;;
	--node-name) NODE_NAME=$value ;;
	--data-dir) DATA_DIR=$value ;;
	--bind) BIND=$value ;;
	--advertise) ADVERTISE=$value ;;
	--raft-bind) RAFT_BIND=$value ;;
	--api-port) API_PORT=$value ;;
	--raft-port) RAFT_PORT=$value ;;
	--peers) PEERS=$value ;;
	--join) JOIN=$value ;;
	--cluster-key-file) KEY_FILE=$value ;;
	--drivers) DRIVERS=$value ;;
	--servers) SERVERS=$value ;;
	--token-file) TOKEN_FILE=$value ;;
	--ca-fingerprint) CA_FINGERPRINT=$value ;;
	--ca-file) CA_FILE=$value ;;
	*) die "unknown option $opt (see --help)" ;;
	esac
	shift
done

# --- the flags: refused before anything is written ----------------------------------
[[ -n $ROLE ]] || die "say what this machine is: --server (a raft member) or --agent (a worker-only node)"
if [[ $ROLE == server ]]; then
	for opt in --servers --token-file --ca-fingerprint --ca-file; do
		[[ -z ${GIVEN[$opt]:-} ]] || die "$opt is for --agent (a worker-only node); a server talks to its own API"
	done
	[[ -z $PEERS || -z $JOIN ]] || die "use --peers to form a new cluster or --join to enter one, not both"
	[[ -n $PEERS || -n $JOIN ]] || die "a server needs --peers H:7071,... (a new cluster: every server's raft address, this one's included) or --join H:7070 (an existing cluster)"
	[[ -z $JOIN || -n $KEY_FILE ]] || die "--join needs the cluster's key: --cluster-key-file (a file with it, or a server's /etc/heroctl/heroctl.env)"
else
	for opt in --peers --join --cluster-key-file --advertise --raft-bind --raft-port --no-agent; do
		[[ -z ${GIVEN[$opt]:-} ]] || die "$opt is for --server; a worker-only node (--agent) joins no raft cluster"
	done
	[[ -n $SERVERS ]] || die "a worker-only node needs --servers H:7070,... (servers of the cluster)"
	[[ -z $CA_FILE || -z $CA_FINGERPRINT ]] || die "give the cluster CA as --ca-file or --ca-fingerprint, not both"
fi
[[ -n $BIND ]] || die "--bind ADDR is required: the address this machine is reached at (0.0.0.0 for every address)"
[[ -z $VENV_DIR || -z $FROM ]] || die "--venv uses an environment as it is: not with --from"

ADDR_RE='^[A-Za-z0-9._:-]+$'
HOSTPORT_RE='^([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$'
check_addr() { [[ $2 =~ $ADDR_RE ]] || die "$1: '$2' is not an address"; }
check_list() {
	local item
	[[ -n $2 ]] || die "$1 needs at least one HOST:PORT"
	IFS=, read -ra items <<<"$2"
	for item in "${items[@]}"; do
		[[ $item =~ $HOSTPORT_RE ]] || die "$1: '$item' is not HOST:PORT"
	done
}
check_port() { [[ $2 =~ ^[0-9]{1,5}$ ]] && (($2 >= 1 && $2 <= 65535)) || die "$1: '$2' is not a TCP port"; }
check_addr --bind "$BIND"
[[ -z $ADVERTISE ]] || check_addr --advertise "$ADVERTISE"
[[ -z $RAFT_BIND ]] || check_addr --raft-bind "$RAFT_BIND"
[[ -z $API_PORT ]] || check_port --api-port "$API_PORT"
[[ -z $RAFT_PORT ]] || check_port --raft-port "$RAFT_PORT"
[[ -z $PEERS ]] || check_list --peers "$PEERS"
[[ -z $JOIN ]] || check_list --join "$JOIN"
[[ -z $SERVERS ]] || check_list --servers "$SERVERS"
[[ -z $CA_FINGERPRINT || $CA_FINGERPRINT =~ ^sha256:[0-9A-Fa-f:]+$ ]] || die "--ca-fingerprint: expected sha256:HEX"
NODE_NAME=${NODE_NAME:-$(hostname -s 2>/dev/null || hostname)}
[[ $NODE_NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "--node-name: '$NODE_NAME' is not a node name (letters, digits, . _ -)"
if [[ $ROLE == server ]]; then DATA_DIR=${DATA_DIR:-/var/lib/heroctl}; else DATA_DIR=${DATA_DIR:-/var/lib/heroctl-agent}; fi
[[ $DATA_DIR =~ ^/[A-Za-z0-9._/-]*$ ]] || die "--data-dir: '$DATA_DIR' is not an absolute path"
DRIVER_LIST=""
if [[ -n $DRIVERS ]]; then
	IFS=, read -ra items <<<"$DRIVERS"
	for d in "${items[@]}"; do
		[[ $d == docker || $d == exec ]] || die "--drivers: '$d' is not docker or exec"
		DRIVER_LIST+="${DRIVER_LIST:+, }\"$d\""
	done
fi
for f in "$KEY_FILE" "$TOKEN_FILE" "$CA_FILE"; do
	[[ -z $f || -r $f ]] || die "cannot read $f"
done
if [[ -n $ROOT ]]; then
	mkdir -p "$ROOT"
	ROOT=$(cd "$ROOT" && pwd)
	[[ $ROOT != / ]] || ROOT=""
elif ((EUID != 0)); then
	die "run it as root (or stage the files with --root DIR)"
fi
if [[ -z $VENV_DIR ]]; then
	FROM=${FROM:-$(dirname "$HERE")}
	if [[ -d $FROM ]]; then
		[[ -f $FROM/pyproject.toml ]] && grep -q '^name = "heroctl"' "$FROM/pyproject.toml" ||
			die "--from $FROM: not a HeroCtl checkout (no pyproject.toml naming heroctl)"
		FROM=$(cd "$FROM" && pwd)
	elif [[ -f $FROM && $FROM == *.whl ]]; then
		FROM=$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM")
	else
		die "--from $FROM: neither a checkout nor a wheel (.whl)"
	fi
else
	[[ -x $VENV_DIR/bin/heroctld && -x $VENV_DIR/bin/heroctl ]] || die "--venv $VENV_DIR: no heroctld and heroctl in $VENV_DIR/bin"
	VENV_DIR=$(cd "$VENV_DIR" && pwd)
fi

# --- writing files: only what differs ----------------------------------------------
CHANGED=""
umask 022

# put PATH MODE: the content on stdin becomes ROOT/PATH with MODE, unless it already is.
put() {
	local path=$1 mode=$2 target="$ROOT$1" new tmp
	new=$(mktemp) # 0600, outside the target's directory, which is touched only for a change
	cat >"$new"
	if [[ -f $target ]] && cmp -s "$new" "$target" && [[ $(stat -c %a "$target") == "${mode#0}" ]]; then
		rm -f "$new"
		say "unchanged $path"
		return
	fi
	tmp=$(mktemp "$(dirname "$target")/.install.XXXXXX")
	cat "$new" >"$tmp"
	rm -f "$new"
	chmod "$mode" "$tmp"
	[[ ! -f $target || $path != /etc/heroctl/heroctld.toml ]] || cp -p "$target" "$target.old"
	mv -f "$tmp" "$target"
	CHANGED=1
	say "wrote $path"
}

directory() { # directory PATH MODE: made if missing (its mode then MODE)
	if [[ ! -d $ROOT$1 ]]; then
		mkdir -p -m "$2" "$ROOT$1"
		say "made $1"
	fi
}

link() { # link PATH TARGET
	if [[ -L $ROOT$1 && $(readlink "$ROOT$1") == "$2" ]]; then
		say "unchanged $1 -> $2"
	else
		ln -sfn "$2" "$ROOT$1"
		CHANGED=1
		say "linked $1 -> $2"
	fi
}

# A secret from a file: a bare value on its first line, or NAME=value (an environment file).
secret_from() {
	local file=$1 name=$2 line
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		case $line in
		'' | '#'*) continue ;;
		"$name="*)
			line=${line#"$name="}
			line=${line#\"} line=${line%\"}
			printf '%s' "$line"
			return
			;;
		*=*) continue ;;
		*)
			printf '%s' "$line"
			return
			;;
		esac
	done <"$file"
}

# --- the software ---------------------------------------------------------------------
directory /usr/local/bin 0755
if [[ -n $VENV_DIR ]]; then
	VENV=$VENV_DIR
	say "using the environment $VENV as it is"
	VENV_RUN=$VENV
else
	VENV=/opt/heroctl/venv
	VENV_RUN=$ROOT$VENV
	directory /opt/heroctl 0755
	if [[ -d $FROM ]]; then
		digest=$(cd "$FROM" && find . \( -name .git -o -name .venv -o -name build -o -name dist \
			-o -name '*.egg-info' -o -name __pycache__ -o -name '.*_cache' -o -name .dev-data \
			-o -path ./bench/results \) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum |
			sha256sum | cut -d' ' -f1)
	else
		digest=$(sha256sum "$FROM" | cut -d' ' -f1)
	fi
	STAMP="from=$FROM sha256=$digest"
	if [[ -x $VENV_RUN/bin/heroctld && -f $ROOT/opt/heroctl/installed && $(<"$ROOT/opt/heroctl/installed") == "$STAMP" ]]; then
		say "unchanged $VENV ($FROM)"
	else
		if [[ ! -x $VENV_RUN/bin/python ]]; then
			say "making the virtual environment $VENV ($PYTHON)"
			"$PYTHON" -m venv "$VENV_RUN"
		fi
		source_dir=$FROM
		if [[ -d $FROM ]]; then # built from a copy: nothing is written into the checkout
			source_dir=$(mktemp -d)
			trap 'rm -rf "$source_dir"' EXIT
			(cd "$FROM" && tar --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
				--exclude='*.egg-info' --exclude=__pycache__ --exclude='.*_cache' --exclude=./.dev-data \
				-cf - .) | tar -C "$source_dir" -xf -
		fi
		say "installing HeroCtl from $FROM into $VENV"
		pip_install() {
			# shellcheck disable=SC2086 # --pip-args is a list of arguments
			"$VENV_RUN/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
				$PIP_ARGS "$@"
		}
		pip_install "$source_dir" # with its dependencies; a directory is always reinstalled
		[[ -d $FROM ]] || pip_install --force-reinstall --no-deps "$source_dir" # a wheel of the same version too
		printf '%s\n' "$STAMP" >"$ROOT/opt/heroctl/installed"
		CHANGED=1
	fi
fi
link /usr/local/bin/heroctld "$VENV/bin/heroctld"
link /usr/local/bin/heroctl "$VENV/bin/heroctl"

# --- the configuration ----------------------------------------------------------------
directory /etc/heroctl 0755
directory /etc/systemd/system 0755
directory "$DATA_DIR" 0700
quoted_list() { # a,b -> "a", "b"
	local out="" item
	IFS=, read -ra items <<<"$1"
	for item in "${items[@]}"; do out+="${out:+, }\"$item\""; done
	printf '%s' "$out"
}
# The daemon's own check of the config on stdin (an unknown key, a bad value, a
# --bind 0.0.0.0 it cannot advertise): refused now rather than at its start.
# It reads no secret: the key it needs to pass is a placeholder.
checked_config() {
	local candidate status=0
	candidate=$(mktemp)
	cat >"$candidate"
	(cd / && HEROCTL_CLUSTER_KEY=placeholder-for-the-check "$VENV_RUN/bin/python" - "$ROLE" "$candidate") <<'EOF' || status=$?
import os, sys
from heroctld.config import ConfigError, load_config, read_config
role, path = sys.argv[1:]
try:
    if role == "server":
        load_config(path, {})
    else:
        read_config(path, dict(os.environ))
except ConfigError as e:
    sys.exit(str(e).replace(path, "heroctld.toml"))
EOF
	if ((status != 0)); then
		rm -f "$candidate"
		die "the $ROLE would refuse this configuration (above), so it was not written; fix the flags and run again"
	fi
	cat "$candidate"
	rm -f "$candidate"
}
CONF=/etc/heroctl/heroctld.toml
if [[ $ROLE == server ]]; then
	UNIT=heroctld.service
	ENV_FILE=/etc/heroctl/heroctl.env
	config=$({
		echo "# Written by deploy/install.sh: running it again with other flags rewrites it"
		echo "# (the previous one is kept as heroctld.toml.old). The keys: README, \"Running a cluster\"."
		echo "# The cluster key is not here but in $ENV_FILE (root only)."
		echo "node_name = \"$NODE_NAME\""
		echo "data_dir = \"$DATA_DIR\""
		echo "bind = \"$BIND\""
		[[ -z $ADVERTISE ]] || echo "advertise = \"$ADVERTISE\""
		[[ -z $RAFT_BIND ]] || echo "raft_bind = \"$RAFT_BIND\""
		echo "api_port = ${API_PORT:-7070}"
		echo "raft_port = ${RAFT_PORT:-7071}"
		if [[ -n $PEERS ]]; then
			echo "peers = [$(quoted_list "$PEERS")]  # the first boot's members; later the replicated ones"
		else
			echo "join = \"$JOIN\""
		fi
		[[ -z $NO_AGENT ]] || echo "no_agent = true"
		if [[ -n $DRIVER_LIST ]]; then
			echo
			echo "[agent]"
			echo "drivers = [$DRIVER_LIST]"
		fi
	} | checked_config) || exit 2
	put "$CONF" 0644 <<<"$config" # (not a pipe: put runs here, and says what it changed)

	# The cluster key: kept if there is one, never printed.
	existing=""
	[[ ! -f $ROOT$ENV_FILE ]] || existing=$(secret_from "$ROOT$ENV_FILE" HEROCTL_CLUSTER_KEY)
	given=""
	if [[ -n $KEY_FILE ]]; then
		given=$(secret_from "$KEY_FILE" HEROCTL_CLUSTER_KEY)
		[[ $given =~ ^[A-Za-z0-9_+/=.-]{16,}$ ]] || die "--cluster-key-file $KEY_FILE: no cluster key in it (at least 16 characters of A-Z a-z 0-9 _ + / = . -; make one with heroctld keygen)"
	fi
	if [[ -n $existing ]]; then
		[[ -z $given || $given == "$existing" ]] || die "$ENV_FILE already holds another cluster key, which this script never replaces: remove that file first if you mean to change this server's key"
		if [[ $(stat -c %a "$ROOT$ENV_FILE") != 600 ]]; then
			chmod 600 "$ROOT$ENV_FILE"
			say "made $ENV_FILE root only (0600)"
		fi
		say "unchanged $ENV_FILE (the cluster key)"
		KEY_SOURCE=kept
	else
		if [[ -n $given ]]; then
			key=$given KEY_SOURCE=given
		else
			key=$("$VENV_RUN/bin/heroctld" keygen) KEY_SOURCE=new
		fi
		old_umask=$(umask)
		umask 077
		{
			[[ ! -f $ROOT$ENV_FILE ]] || cat "$ROOT$ENV_FILE"
			echo "# The cluster key: the same on every server, a secret (README, \"Running a cluster\")."
			printf 'HEROCTL_CLUSTER_KEY=%s\n' "$key"
		} >"$ROOT$ENV_FILE.new"
		umask "$old_umask"
		chmod 600 "$ROOT$ENV_FILE.new"
		mv -f "$ROOT$ENV_FILE.new" "$ROOT$ENV_FILE"
		CHANGED=1
		say "wrote $ENV_FILE (0600: the $([[ $KEY_SOURCE == new ]] && echo "new" || echo "given") cluster key)"
	fi
else
	UNIT=heroctl-agent.service
	ENV_FILE=/etc/heroctl/heroctl-agent.env
	config=$({
		echo "# Written by deploy/install.sh for a worker-only node (heroctld agent): running it again"
		echo "# rewrites it (the previous one is kept as heroctld.toml.old). Its servers, name and data"
		echo "# dir are flags, in $ENV_FILE. The keys: README, \"Nodes, agents and workloads\"."
		echo "[agent]"
		echo "host_ip = \"$BIND\""
		[[ -z $API_PORT ]] || echo "api_port = $API_PORT"
		[[ -z $DRIVER_LIST ]] || echo "drivers = [$DRIVER_LIST]"
	} | checked_config) || exit 2
	put "$CONF" 0644 <<<"$config" # (not a pipe: put runs here, and says what it changed)
	token=""
	if [[ -n $TOKEN_FILE ]]; then
		token=$(secret_from "$TOKEN_FILE" HEROCTL_TOKEN)
		[[ $token =~ ^[A-Za-z0-9_.+/=-]{8,}$ ]] || die "--token-file $TOKEN_FILE: no token in it (ht_...)"
	elif [[ -f $ROOT$ENV_FILE ]]; then
		token=$(secret_from "$ROOT$ENV_FILE" HEROCTL_TOKEN)
	fi
	flags="--servers $SERVERS --data-dir $DATA_DIR --node-name $NODE_NAME"
	[[ -z $CA_FINGERPRINT ]] || flags+=" --ca-fingerprint $CA_FINGERPRINT"
	if [[ -n $CA_FILE ]]; then
		put /etc/heroctl/ca.pem 0644 <"$CA_FILE"
		flags+=" --ca-file /etc/heroctl/ca.pem"
	fi
	agent_env="# Written by deploy/install.sh: the flags of heroctld agent (heroctl-agent.service)
# and the token that enrolls the node (root only).
HEROCTL_AGENT_FLAGS=\"$flags\"" # split into arguments by ExecStart's $HEROCTL_AGENT_FLAGS
	[[ -z $token ]] || agent_env+=$'\n'"HEROCTL_TOKEN=$token"
	put "$ENV_FILE" 0600 <<<"$agent_env"
fi
put "/etc/systemd/system/$UNIT" 0644 <"$HERE/$UNIT"

# --- systemd ----------------------------------------------------------------------------
if [[ -n $ROOT ]]; then
	say "--root: systemctl not run; on the machine itself: systemctl daemon-reload && systemctl enable --now $UNIT"
elif [[ ! -d /run/systemd/system ]]; then
	say "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): $UNIT not enabled; start heroctld yourself"
else
	[[ -z $CHANGED ]] || systemctl daemon-reload
	systemctl enable --quiet "$UNIT"
	if systemctl is-active --quiet "$UNIT"; then
		if [[ -n $CHANGED ]]; then
			systemctl restart --no-block "$UNIT"
			say "restarting $UNIT (its tasks keep running)"
		else
			say "$UNIT is running; nothing changed"
		fi
	elif [[ -z $NO_START ]]; then
		systemctl start --no-block "$UNIT"
		say "starting $UNIT (systemctl status $UNIT shows what it waits for)"
	else
		say "$UNIT enabled, not started (--no-start)"
	fi
fi

# --- what next ----------------------------------------------------------------------------
API=${API_PORT:-7070}
if [[ $ROLE == server ]]; then
	reach=${ADVERTISE:-$BIND}
	[[ $reach != 0.0.0.0 && $reach != :: ]] || reach="<this server's address>"
	echo
	echo "Next:"
	if [[ -n $PEERS ]]; then
		echo "  1. On each other server of --peers, install with the same cluster key: copy"
		echo "     $ENV_FILE there (root only, e.g. with scp) and run"
		echo "       $PROG --server --bind <its address> --peers $PEERS --cluster-key-file heroctl.env"
		echo "  2. Once a majority runs, 'systemctl status $UNIT' says leader or follower. Then, once:"
	else
		echo "  1. 'systemctl status $UNIT' says follower once the cluster took it in. A new cluster"
		echo "     needs, once:"
	fi
	echo "       export HEROCTL_ADDR=https://$reach:$API HEROCTL_CACERT=$DATA_DIR/tls/ca.pem"
	echo "       heroctl acl bootstrap      # prints a management token and the admin password, once"
	echo "  Open between the servers: ${RAFT_PORT:-7071}/tcp (raft) and $API/tcp (the API; also for"
	echo "  agents and heroctl); from the servers to worker-only nodes: 7072/tcp (their agent API)."
else
	echo
	echo "Next: 'systemctl status $UNIT'; 'heroctl node list' shows $NODE_NAME once it registered."
	[[ -n $token ]] || echo "  A new node needs a token allowed \"nodes: write\" to register: run again with --token-file."
	echo "  Open from the servers to this node: ${API_PORT:-7072}/tcp (its agent API)."
fi
