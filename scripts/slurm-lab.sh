#!/usr/bin/env bash
# A real Slurm cluster of two hosts on this one machine, for the specs of members that dial back.
#
#   scripts/slurm-lab.sh start [DIR]    install what is missing, start the cluster, print its environment
#   scripts/slurm-lab.sh status [DIR]   what is running
#   scripts/slurm-lab.sh stop [DIR]     tear everything down (idempotent)
#
# DIR (default ${TMPDIR:-/tmp}/nexus-slurm-lab) holds the lab's state: slurm.conf, the munge key and
# socket, the daemons' pid files and logs. Needs root and Linux network namespaces.
#
# Each host is a network namespace (nxlab-a, nxlab-b) with its own address and host name (nexus-a
# 10.77.0.11, nexus-b 10.77.0.12) on a bridge (nxlab0, 10.77.0.1) that belongs to the root namespace,
# where the team runs and where slurmctld listens: members dial the team at 10.77.0.1. Each slurmd
# starts through `nsenter --net=... unshare --uts` rather than `ip netns exec`, which remounts /sys
# and hides the cgroup mounts slurmd needs. `start` prints, for eval:
#   export SLURM_CONF=DIR/slurm.conf SLURM_LAB_DIR=DIR SLURM_LAB_TEAM_ADDR=10.77.0.1
#   export SLURM_LAB_HOSTS='nexus-a=10.77.0.11 nexus-b=10.77.0.12'
# SLURM_LAB_SUBNET (first three octets, default 10.77.0) and SLURM_LAB_CTLD_PORT (default 16817)
# move the lab off an address or port already taken. One lab per machine: the names are fixed, and
# the bridge's alias says which DIR owns it. A start first clears whatever a previous start in the
# same DIR left (killed half-way, failed); a start that fails tears down what it made.
#
# Teardown goes by process id only: jobs by id (scancel), then whatever runs in the lab's
# namespaces (slurmd, steps), then the pid files' slurmctld and munged; never a process name.
# Measured here (2 cores, Debian 12, Slurm 22.05.8): start 0.15-0.45 s once installed (apt-get adds
# about 8 s the first time); stop 0.35-0.4 s, with or without a running step.
set -euo pipefail

readonly HOSTS=(nexus-a nexus-b)
readonly BRIDGE=nxlab0
readonly SUBNET=${SLURM_LAB_SUBNET:-10.77.0}
readonly TEAM_ADDR=$SUBNET.1
readonly CTLD_PORT=${SLURM_LAB_CTLD_PORT:-16817}
readonly DEADLINE_S=30

say() { printf 'slurm-lab: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# The namespace, host-side veth and address of host number $1 (0-based).
netns_of() { printf 'nxlab-%s' "${HOSTS[$1]#nexus-}"; }
veth_of() { printf 'nxlab-%s-v' "${HOSTS[$1]#nexus-}"; }
addr_of() { printf '%s.%d' "$SUBNET" $((11 + $1)); }

usage() {
	printf 'usage: %s start|stop|status [DIR]\n' "$0" >&2
	exit 2
}

# The pid recorded in file $1, if that process still runs.
live_pid() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ ]] && running "$pid" && printf '%s' "$pid"
}

# Whether process $1 runs. A zombie does not: it is dead already, and this machine's init may take
# seconds to reap the daemons' zombies (kill -0 would still say yes).
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# Every process running in the lab's namespaces: slurmd and its job steps.
netns_pids() {
	local i pid
	for i in "${!HOSTS[@]}"; do
		[[ -e /run/netns/$(netns_of "$i") ]] || continue
		for pid in $(ip netns pids "$(netns_of "$i")"); do
			running "$pid" && printf '%s\n' "$pid"
		done
	done
	return 0
}

log_tail() {
	say "the last lines of $1:"
	tail -n 20 "$1" >&2 2>/dev/null || say "(no log at $1)"
}

install_missing() {
	local tool missing=0
	for tool in munged mungekey slurmctld slurmd srun sinfo nsenter unshare ip; do
		command -v "$tool" >/dev/null || missing=1
	done
	((missing)) || return 0
	say "installing slurmctld slurmd slurm-client munge"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
	local i cpus
	cpus=$(nproc)
	cat >"$LAB/slurm.conf" <<-EOF
		# The slurm-lab's cluster: written by scripts/slurm-lab.sh, gone with its stop.
		ClusterName=nexuslab
		SlurmctldHost=$(hostname -s)($TEAM_ADDR)
		SlurmctldPort=$CTLD_PORT
		SlurmdPort=6818
		SlurmUser=root
		AuthType=auth/munge
		CredType=cred/munge
		AuthInfo=socket=$LAB/munge/munge.socket
		StateSaveLocation=$LAB/ctld
		SlurmdSpoolDir=$LAB/d/%n
		SlurmctldPidFile=$LAB/run/slurmctld.pid
		SlurmdPidFile=$LAB/run/slurmd-%n.pid
		SlurmctldLogFile=$LAB/log/slurmctld.log
		SlurmdLogFile=$LAB/log/slurmd-%n.log
		ProctrackType=proctrack/linuxproc
		TaskPlugin=task/none
		MpiDefault=none
		SelectType=select/cons_tres
		SelectTypeParameters=CR_Core
		AccountingStorageType=accounting_storage/none
		JobAcctGatherType=jobacct_gather/none
		ReturnToService=2
		SlurmdTimeout=30
		KillWait=5
		MinJobAge=30
	EOF
	for i in "${!HOSTS[@]}"; do
		printf 'NodeName=%s NodeAddr=%s CPUs=%d State=UNKNOWN\n' "${HOSTS[$i]}" "$(addr_of "$i")" "$cpus" >>"$LAB/slurm.conf"
	done
	printf 'PartitionName=lab Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n' >>"$LAB/slurm.conf"
}

# The bridge's alias names the lab that made it; an empty one is a start killed between making the
# bridge and naming it (the name is this script's own).
check_bridge() {
	local owner
	[[ -e /sys/class/net/$BRIDGE ]] || return 0
	owner=$(<"/sys/class/net/$BRIDGE/ifalias")
	[[ -z $owner || $owner == "$LAB" ]] || die "$BRIDGE belongs to another lab, in $owner: stop that one first"
}

make_network() {
	local i ns veth
	ip link add "$BRIDGE" type bridge
	# The alias marks the bridge as this lab's, so that a later start or stop knows it may remove it.
	ip link set "$BRIDGE" alias "$LAB"
	ip addr add "$TEAM_ADDR/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	for i in "${!HOSTS[@]}"; do
		ns=$(netns_of "$i") veth=$(veth_of "$i")
		ip netns add "$ns"
		ip link add "$veth" type veth peer name eth0 netns "$ns"
		ip link set "$veth" master "$BRIDGE" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$(addr_of "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" route add default via "$TEAM_ADDR"
	done
}

start_munge() {
	install -d -o munge -g munge -m 755 "$LAB/munge"
	runuser -u munge -- mungekey --create --keyfile="$LAB/munge/munge.key"
	runuser -u munge -- munged --socket="$LAB/munge/munge.socket" --key-file="$LAB/munge/munge.key" \
		--pid-file="$LAB/munge/munged.pid" --log-file="$LAB/munge/munged.log" --seed-file="$LAB/munge/munged.seed" ||
		{
			log_tail "$LAB/munge/munged.log"
			die "munged did not start"
		}
}

start_slurm() {
	local i
	slurmctld -i -f "$LAB/slurm.conf" || {
		log_tail "$LAB/log/slurmctld.log"
		die "slurmctld did not start"
	}
	for i in "${!HOSTS[@]}"; do
		# shellcheck disable=SC2016 # the inner shell expands its own arguments
		nsenter --net="/run/netns/$(netns_of "$i")" unshare --uts \
			sh -c 'hostname "$1" && exec slurmd -f "$2" -N "$1"' slurmd "${HOSTS[$i]}" "$LAB/slurm.conf" || {
			log_tail "$LAB/log/slurmd-${HOSTS[$i]}.log"
			die "slurmd for ${HOSTS[$i]} did not start"
		}
	done
}

# Bounded wait until sinfo shows every host idle; if a daemon dies meanwhile, say which at once.
wait_idle() {
	local deadline=$((SECONDS + DEADLINE_S)) idle host states
	while :; do
		live_pid "$LAB/run/slurmctld.pid" >/dev/null || {
			log_tail "$LAB/log/slurmctld.log"
			die "slurmctld is not running"
		}
		for host in "${HOSTS[@]}"; do
			# slurmd writes its pid file once it has daemonized: until then, the deadline watches it.
			[[ ! -s $LAB/run/slurmd-$host.pid ]] || live_pid "$LAB/run/slurmd-$host.pid" >/dev/null || {
				log_tail "$LAB/log/slurmd-$host.log"
				die "slurmd for $host is not running"
			}
		done
		states=$(SLURM_CONF=$LAB/slurm.conf sinfo -h -N -o '%N %t' 2>&1 || true)
		idle=$(grep -c ' idle$' <<<"$states" || true)
		((idle == ${#HOSTS[@]})) && return 0
		if ((SECONDS >= deadline)); then
			say "sinfo says: $states"
			for host in "${HOSTS[@]}"; do
				grep -q "^$host idle\$" <<<"$states" || log_tail "$LAB/log/slurmd-$host.log"
			done
			log_tail "$LAB/log/slurmctld.log"
			die "not every host was idle within ${DEADLINE_S} s"
		fi
		sleep 0.05
	done
}

start() {
	local i
	[[ $EUID -eq 0 ]] || die "needs root (network namespaces, munge's own user)"
	install_missing
	# A lab left behind in this DIR (a half start, a crash) goes first; another lab's bridge is not ours.
	check_bridge
	stop quietly
	trap 'say "start failed; tearing down"; (stop quietly) || true' EXIT
	mkdir -p "$LAB"/{ctld,d,log,run}
	chmod 755 "$LAB" # munged, as its own user, must reach its folder
	write_conf
	make_network
	start_munge
	start_slurm
	wait_idle
	trap - EXIT
	printf 'export SLURM_CONF=%q SLURM_LAB_DIR=%q SLURM_LAB_TEAM_ADDR=%s\n' "$LAB/slurm.conf" "$LAB" "$TEAM_ADDR"
	printf "export SLURM_LAB_HOSTS='"
	for i in "${!HOSTS[@]}"; do
		((i == 0)) || printf ' '
		printf '%s=%s' "${HOSTS[$i]}" "$(addr_of "$i")"
	done
	printf "'\n"
	say "up: ${HOSTS[*]} idle (logs in $LAB/log)"
}

# SIGTERM to the processes $@, then SIGKILL to those still there after 3 s.
end_pids() {
	local deadline=$((SECONDS + 3)) pid left
	(($#)) || return 0
	kill "$@" 2>/dev/null || true
	while :; do
		left=()
		for pid in "$@"; do running "$pid" && left+=("$pid"); done
		((${#left[@]})) || return 0
		if ((SECONDS >= deadline)); then
			kill -KILL "${left[@]}" 2>/dev/null || true
			return 0
		fi
		sleep 0.02
	done
}

# The jobs go first, by id, while slurmctld can still end them: their callers' srun then exit cleanly.
cancel_jobs() {
	local deadline=$((SECONDS + 3)) jobs=()
	live_pid "$LAB/run/slurmctld.pid" >/dev/null || return 0
	mapfile -t jobs < <(SLURM_CONF=$LAB/slurm.conf squeue -h -o %i 2>/dev/null || true)
	((${#jobs[@]})) || return 0
	SLURM_CONF=$LAB/slurm.conf scancel "${jobs[@]}" 2>/dev/null || true
	# Done when the namespaces hold nothing but the slurmds (or what is left gets killed next).
	while (($(netns_pids | wc -l) > ${#HOSTS[@]} && SECONDS < deadline)); do sleep 0.02; done
}

# Everything in the lab's namespaces is the lab's: slurmd, and steps scancel did not end (a
# slurmstepd with no slurmd to report to ignores SIGTERM). Nothing there keeps state: SIGKILL.
kill_netns() {
	local deadline=$((SECONDS + 3)) pids=()
	while :; do
		mapfile -t pids < <(netns_pids)
		((${#pids[@]})) || return 0
		((SECONDS < deadline)) || die "still running in the lab's namespaces: $(ps -o pid=,args= -p "$(IFS=,; printf '%s' "${pids[*]}")" || true)"
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.02
	done
}

stop() {
	local i pid pids=() left=()
	[[ $EUID -eq 0 ]] || die "needs root"
	check_bridge
	cancel_jobs
	kill_netns
	# slurmctld (with its slurmscriptd child) and munged are known by their pid files.
	if pid=$(live_pid "$LAB/run/slurmctld.pid"); then
		mapfile -t pids < <(ps -o pid= --ppid "$pid" || true)
		pids=("$pid" "${pids[@]// /}")
	fi
	pid=$(live_pid "$LAB/munge/munged.pid") && pids+=("$pid")
	end_pids "${pids[@]}"
	for i in "${!HOSTS[@]}"; do
		# The pair goes with its host end; the namespace would take it only a second or two later.
		[[ ! -e /sys/class/net/$(veth_of "$i") ]] || ip link del "$(veth_of "$i")"
		[[ ! -e /run/netns/$(netns_of "$i") ]] || ip netns del "$(netns_of "$i")"
	done
	[[ ! -e /sys/class/net/$BRIDGE ]] || ip link del "$BRIDGE"
	# Verify: nothing of ours may be left running.
	for pid in "${pids[@]}"; do running "$pid" && left+=("$pid"); done
	((${#left[@]} == 0)) || die "still running after stop: $(ps -o pid=,args= -p "$(IFS=,; printf '%s' "${left[*]}")" || true)"
	if [[ -d $LAB ]]; then
		[[ -e $LAB/slurm.conf || -z $(ls -A "$LAB") ]] || die "$LAB does not look like a slurm-lab folder; left alone"
		rm -rf "$LAB"
	fi
	[[ ${1:-} == quietly ]] || say "stopped"
}

status() {
	local host pid
	if pid=$(live_pid "$LAB/munge/munged.pid"); then echo "munged: $pid"; else echo "munged: not running"; fi
	if pid=$(live_pid "$LAB/run/slurmctld.pid"); then echo "slurmctld: $pid"; else echo "slurmctld: not running"; fi
	for host in "${HOSTS[@]}"; do
		if pid=$(live_pid "$LAB/run/slurmd-$host.pid"); then echo "slurmd $host: $pid"; else echo "slurmd $host: not running"; fi
	done
	[[ -e $LAB/slurm.conf ]] || return 1
	SLURM_CONF=$LAB/slurm.conf sinfo -N -o '%N %t %o'
}

(($# >= 1 && $# <= 2)) || usage
LAB=$(realpath -m "${2:-${TMPDIR:-/tmp}/nexus-slurm-lab}")
readonly LAB
[[ $LAB =~ ^[A-Za-z0-9_./-]+$ ]] || die "the lab's folder '$LAB' may hold only letters, digits and _ . / - (slurm.conf does not quote)"
[[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "SLURM_LAB_SUBNET '$SUBNET' is not three octets such as 10.77.0"
[[ $CTLD_PORT =~ ^[0-9]{1,5}$ && $CTLD_PORT -gt 0 && $CTLD_PORT -lt 65536 ]] || die "SLURM_LAB_CTLD_PORT '$CTLD_PORT' is not a port number"
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
