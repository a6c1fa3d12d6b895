// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <argp.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "cgroup.h"
#include "exposition.h"
#include "metrics.h"
#include "netns.h"
#include "options.h"

const char *argp_program_version = "porttrace " PT_VERSION;
const char *argp_program_bug_address = "the porttrace issue tracker";

enum {
	OPT_TCP = 0x100,
	OPT_UDP,
	OPT_EPHEMERAL,
	OPT_FAILURES,
	OPT_FORMAT,
	OPT_RING,
	OPT_TIMELINE,
	OPT_KEEP,
	OPT_ALL,
	OPT_COMM,
	OPT_RECORD_RAW,
	OPT_ROTATE_SIZE,
	OPT_ROTATE_KEEP,
	OPT_EXHAUSTION,
	OPT_INTERVAL,
	OPT_WARN,
	OPT_METRICS,
	OPT_METRICS_TEXTFILE,
	OPT_METRICS_MAX_DESTS,
	OPT_CGROUP,
	OPT_NETNS,
	OPT_NO_EVENTS,
	OPT_REPORT,
};

static const char run_doc[] =
	"Trace which process holds which TCP or UDP port, from allocation to release.\n"
	"\n"
	"Commands: porttrace [OPTIONS]          live trace (this page)\n"
	"          porttrace timeline FILE...   per-process timelines from a log\n"
	"          porttrace exhaustion FILE... port exhaustion figures from a log\n"
	"          porttrace top                live view of the fullest destinations\n"
	"          porttrace report FILE... -o report.html   an HTML report of a log\n"
	"\v"
	"Examples:\n"
	"  porttrace                   # every transition and port event, until Ctrl-C\n"
	"  porttrace -p 4711 -p 4712   # only sockets owned by these processes\n"
	"  porttrace -P 443 -4 --tcp   # IPv4 TCP with local or remote port 443\n"
	"  porttrace --failures        # only failed binds and autobinds\n"
	"  porttrace --timeline --comm curl -d 30    # what curl did with ports\n"
	"  porttrace --exhaustion --warn 90%         # how full destinations get\n"
	"  porttrace -o ports.jsonl --format json    # a log; then, offline:\n"
	"  porttrace timeline ports.jsonl\n"
	"  porttrace --report /tmp/ports.html -d 60  # a picture of the run, at exit\n"
	"  porttrace -o /var/log/porttrace.jsonl --format json --rotate-size 100M\n"
	"  porttrace --metrics 127.0.0.1:9655 --no-events    # Prometheus metrics only\n"
	"  porttrace --metrics-textfile /var/lib/prometheus/node-exporter/porttrace.prom\n"
	"  porttrace --cgroup /system.slice/nginx.service   # one service's sockets\n"
	"  porttrace --netns blue      # one \"ip netns\" namespace (or a path, or an inode)\n"
	"\n"
	"Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN). Filters apply in the kernel.";

static const struct argp_option run_options[] = {
	{NULL, 0, NULL, 0, "Filters (in the kernel):", 1},
	{"pid", 'p', "PID", 0, "Only sockets owned by PID (repeatable)", 1},
	{"port", 'P', "PORT", 0, "Only sockets with PORT as local or remote port (repeatable)", 1},
	{"ipv4", '4', NULL, 0, "Only IPv4", 1},
	{"ipv6", '6', NULL, 0, "Only IPv6", 1},
	{"tcp", OPT_TCP, NULL, 0, "Only TCP", 1},
	{"udp", OPT_UDP, NULL, 0, "Only UDP", 1},
	{"ephemeral", OPT_EPHEMERAL, NULL, 0,
	 "Only sockets whose local port is inside their namespace's ephemeral range (or not picked yet)", 1},
	{"failures", OPT_FAILURES, NULL, 0, "Only failed binds and allocations", 1},
	{"cgroup", OPT_CGROUP, "PATH", 0,
	 "Only sockets of processes in this cgroup v2 subtree (a path under the cgroup2 mount, or absolute)", 1},
	{"netns", OPT_NETNS, "NS", 0,
	 "Only this network namespace: an \"ip netns\" name, a path (/proc/PID/ns/net) or an inode", 1},
	{NULL, 0, NULL, 0, "Output:", 2},
	{"output", 'o', "FILE", 0, "Append events to FILE instead of standard output", 2},
	{"no-events", OPT_NO_EVENTS, NULL, 0,
	 "Write no events at all: only metrics, timelines and reports (a service that feeds Prometheus)", 2},
	{"format", OPT_FORMAT, "FMT", 0, "text (default), json (JSON Lines) or csv", 2},
	{"duration", 'd', "SECONDS", 0, "Stop after SECONDS", 2},
	{"rotate-size", OPT_ROTATE_SIZE, "SIZE", 0,
	 "Rotate the -o file when it reaches SIZE (bytes, or with K, M, G); pieces are gzipped", 2},
	{"rotate-keep", OPT_ROTATE_KEEP, "N", 0, "Rotated pieces to keep (default 5)", 2},
	{NULL, 0, NULL, 0, "Timelines:", 3},
	{"timeline", OPT_TIMELINE, NULL, 0, "At exit, print a port timeline per process", 3},
	{"comm", OPT_COMM, "COMM", 0, "Timelines only of processes named COMM (repeatable)", 3},
	{"keep", OPT_KEEP, "N", 0, "Released ports kept in detail per process (default 200)", 3},
	{"all", OPT_ALL, NULL, 0, "Print every port kept, without summarising", 3},
	{"report", OPT_REPORT, "FILE", 0,
	 "At exit, write an HTML report of the run to FILE (as porttrace report does from a log)", 3},
	{NULL, 0, NULL, 0, "Tuning:", 4},
	{"ring-size", OPT_RING, "MB", 0, "Ring buffer size in MiB, a power of two (default 8)", 4},
	{"verbose", 'v', NULL, 0, "Say what is attached; show libbpf's log", 4},
	{"record-raw", OPT_RECORD_RAW, "FILE", 0,
	 "Also record the kernel's raw records to FILE (for bug reports and tools/ptreplay)", 4},
	{NULL, 0, NULL, 0, "Port exhaustion:", 5},
	{"exhaustion", OPT_EXHAUSTION, NULL, 0,
	 "How full each destination's ephemeral range gets: a report at exit, snapshot records in JSON output",
	 5},
	{"interval", OPT_INTERVAL, "SECONDS", 0,
	 "Seconds between snapshot records and checks against the socket table (default 10; implies --exhaustion)",
	 5},
	{"warn", OPT_WARN, "PCT", 0,
	 "Warn when a destination is PCT full, 1..100, e.g. 80 or 80% (default 80; implies --exhaustion)", 5},
	{NULL, 0, NULL, 0, "Fleet (Prometheus):", 6},
	{"metrics", OPT_METRICS, "ADDR:PORT", 0,
	 "Serve Prometheus metrics at http://ADDR:PORT/metrics; ':PORT' is 127.0.0.1 (implies --exhaustion)", 6},
	{"metrics-textfile", OPT_METRICS_TEXTFILE, "FILE", 0,
	 "Write the metrics to FILE.prom every --interval, replaced atomically, for node_exporter's textfile collector",
	 6},
	{"metrics-max-destinations", OPT_METRICS_MAX_DESTS, "N", 0,
	 "Destination series at most, fullest first; the rest summed as \"other\" (default 50)", 6},
	{},
};

int options__parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	/* strtoul() accepts "-1" as ULONG_MAX; refuse any sign. */
	if (!s || !*s || strchr(s, '-') || strchr(s, '+'))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end)
		return errno == ERANGE ? -ERANGE : -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

bool options__files(int key, struct argp_state *state, char ***files, int *nfiles)
{
	if (key == ARGP_KEY_ARG) {
		*files = state->argv + state->next - 1;
		*nfiles = state->argc - state->next + 1;
		state->next = state->argc;
		return true;
	}
	if (key == ARGP_KEY_END) {
		if (!*nfiles)
			argp_error(state, "no log file given");
		return true;
	}
	return false;
}

void options__warn(struct argp_state *state, const char *arg, double *frac)
{
	if (options__parse_pct(arg, frac))
		argp_error(state, "invalid --warn '%s': expected a percentage 1..100, e.g. 80 or 80%%",
			   arg);
}

void options__interval(struct argp_state *state, const char *arg, double *seconds)
{
	if (options__parse_seconds(arg, seconds))
		argp_error(state, "invalid interval '%s': expected seconds > 0", arg);
}

int options__parse_seconds(const char *s, double *out)
{
	double v;
	char *end;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -EINVAL;
	if (v <= 0 || v > 31 * 24 * 3600.0)
		return -ERANGE;
	*out = v;
	return 0;
}

/* "64M", "1G", "4096": bytes, at least 4 KiB so a header always fits. */
static int parse_size(const char *s, unsigned long long *out)
{
	static const char units[] = "KMG";
	unsigned long long mult = 1;
	char num[32];
	size_t len = strlen(s);
	const char *u;
	unsigned long v;

	if (!len || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len + 1);
	/* Not strchr(): it would also find the terminator, for a ' '. */
	u = memchr(units, num[len - 1] & ~0x20, sizeof(units) - 1);
	if (u) {
		mult = 1ULL << (10 * (u - units + 1));
		num[len - 1] = '\0';
	}
	/* v > max / mult first: v * mult must not wrap around into range. */
	if (options__parse_ulong(num, 1, 1UL << 40, &v) || v > (1ULL << 40) / mult ||
	    v * mult < 4096)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int options__parse_pct(const char *s, double *frac)
{
	char buf[8];
	size_t n = s ? strlen(s) : 0;
	unsigned long v;
	int err;

	if (n && s[n - 1] == '%')
		n--;
	if (!n || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	err = options__parse_ulong(buf, 1, 100, &v);
	if (err)
		return err;
	*frac = v / 100.0;
	return 0;
}

static error_t parse_run(int key, char *arg, struct argp_state *state)
{
	struct run_opts *o = state->input;
	struct tracer_opts *t = &o->trace;
	unsigned long v;

	switch (key) {
	case 'p':
		if (options__parse_ulong(arg, 1, 4194304, &v))
			argp_error(state, "invalid PID '%s': expected 1..4194304", arg);
		if (t->n_pids >= PT_MAX_PIDS)
			argp_error(state, "at most %d -p options", PT_MAX_PIDS);
		o->pids[t->n_pids++] = v;
		break;
	case 'P':
		if (options__parse_ulong(arg, 1, 65535, &v))
			argp_error(state, "invalid port '%s': expected 1..65535", arg);
		if (t->n_ports >= PT_MAX_PORTS)
			argp_error(state, "at most %d -P options", PT_MAX_PORTS);
		o->ports[t->n_ports++] = v;
		break;
	case '4':
	case '6':
		if (t->family)
			argp_error(state, "-4 and -6 exclude each other");
		t->family = key == '4' ? AF_INET : AF_INET6;
		break;
	case OPT_TCP:
	case OPT_UDP:
		if (t->proto)
			argp_error(state, "--tcp and --udp exclude each other");
		t->proto = key == OPT_TCP ? IPPROTO_TCP : IPPROTO_UDP;
		break;
	case OPT_EPHEMERAL:
		t->ephemeral = true;
		break;
	case OPT_FAILURES:
		t->failures = true;
		break;
	case 'o':
		if (!*arg)
			argp_error(state, "empty output file name");
		o->output = arg;
		break;
	case OPT_FORMAT:
		if (output__parse_format(arg, &o->format))
			argp_error(state, "invalid format '%s': expected text, json or csv", arg);
		break;
	case 'd':
		if (options__parse_seconds(arg, &o->duration))
			argp_error(state, "invalid duration '%s': expected seconds > 0", arg);
		break;
	case OPT_RING:
		if (options__parse_ulong(arg, 1, 1024, &v) || (v & (v - 1)))
			argp_error(state, "invalid ring size '%s': expected a power of two, 1..1024 MiB",
				   arg);
		t->ring_mb = v;
		break;
	case 'v':
		o->verbose = true;
		break;
	case OPT_TIMELINE:
		o->timeline = true;
		break;
	case OPT_COMM:
		if (!*arg || o->tl.n_comms >= PT_MAX_PIDS)
			argp_error(state, "invalid COMM '%s'", arg);
		o->comms[o->tl.n_comms++] = arg;
		break;
	case OPT_KEEP:
		if (options__parse_ulong(arg, 2, 1000000, &v))
			argp_error(state, "invalid --keep '%s': expected 2..1000000", arg);
		o->tl.keep = v;
		break;
	case OPT_ALL:
		o->tl.all = true;
		break;
	case OPT_ROTATE_SIZE:
		if (parse_size(arg, &o->rotate_size))
			argp_error(state, "invalid --rotate-size '%s': expected 4K..1024G", arg);
		break;
	case OPT_ROTATE_KEEP:
		if (options__parse_ulong(arg, 1, 1000, &v))
			argp_error(state, "invalid --rotate-keep '%s': expected 1..1000", arg);
		o->rotate_keep = v;
		break;
	case ARGP_KEY_END:
		if ((o->rotate_size || o->rotate_keep) && !o->output)
			argp_error(state, "--rotate-size and --rotate-keep need -o FILE");
		if (o->no_events && (o->output || o->record_raw))
			argp_error(state, "--no-events writes no log: drop -o and --record-raw");
		break;
	case OPT_RECORD_RAW:
		if (!*arg)
			argp_error(state, "empty --record-raw file name");
		o->record_raw = arg;
		break;
	case OPT_EXHAUSTION:
		o->exhaustion = true;
		break;
	case OPT_REPORT:
		if (!*arg)
			argp_error(state, "empty --report file name");
		o->report = arg;
		break;
	case OPT_INTERVAL:
		options__interval(state, arg, &o->interval);
		o->exhaustion = true;
		break;
	case OPT_WARN:
		options__warn(state, arg, &o->warn_frac);
		o->exhaustion = true;
		break;
	case OPT_METRICS: {
		struct sockaddr_storage ss;

		if (exposition__parse_addr(arg, &ss))
			argp_error(state, "invalid --metrics '%s': expected ADDR:PORT, [ADDR]:PORT or :PORT",
				   arg);
		o->metrics = arg;
		o->exhaustion = true;
		break;
	}
	case OPT_METRICS_TEXTFILE: {
		size_t n = strlen(arg);

		/* node_exporter reads *.prom files only. */
		if (n < 6 || strcmp(arg + n - 5, ".prom"))
			argp_error(state, "invalid --metrics-textfile '%s': the name must end in .prom",
				   arg);
		o->metrics_textfile = arg;
		o->exhaustion = true;
		break;
	}
	case OPT_METRICS_MAX_DESTS:
		if (options__parse_ulong(arg, 1, METRICS_MAX_DESTS, &v))
			argp_error(state, "invalid --metrics-max-destinations '%s': expected 1..%d", arg,
				   METRICS_MAX_DESTS);
		o->metrics_max_dests = v;
		break;
	case OPT_NO_EVENTS:
		o->no_events = true;
		break;
	case OPT_CGROUP: {
		struct cgroups *cg = *arg ? cgroups__new() : NULL;
		int err = cg ? cgroups__id(cg, arg, &o->trace.cgroup_id, &o->trace.cgroup_level) : -errno;

		cgroups__free(cg);
		if (!*arg)
			argp_error(state, "empty --cgroup path");
		if (err)
			argp_error(state, "invalid --cgroup '%s': %s", arg,
				   err == -ENOENT  ? "no such cgroup"
				   : err == -EXDEV ? "not under the cgroup v2 mount"
						   : strerror(-err));
		break;
	}
	case OPT_NETNS: {
		__u32 ino;
		int err = netns__parse(arg, &ino);

		if (err)
			argp_error(state, "invalid --netns '%s': %s", arg,
				   err == -EINVAL   ? "not a network namespace"
				   : err == -ENOENT ? "no such namespace (name, path or inode)"
						    : strerror(-err));
		o->netns = ino;
		break;
	}
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

void options__parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct argp argp = {.options = run_options, .parser = parse_run, .doc = run_doc};

	memset(o, 0, sizeof(*o));
	o->trace.ring_mb = PT_DEFAULT_RING_MB;
	o->rotate_keep = 0;
	o->trace.pids = o->pids;
	o->trace.ports = o->ports;
	/* -p selects timelines too; the kernel already dropped the rest. */
	o->tl.pids = o->pids;
	o->tl.comms = o->comms;
	o->interval = 10;
	o->warn_frac = 0.8;
	o->metrics_max_dests = METRICS_DEFAULT_DESTS;
	/* argp exits with code 64 on usage errors; porttrace says 2. */
	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, o);
	o->tl.n_pids = o->trace.n_pids;
	if (!o->rotate_keep)
		o->rotate_keep = PT_ROTATE_KEEP;
}
