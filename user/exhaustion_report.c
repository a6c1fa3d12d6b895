// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * exhaustion's presentation: the JSON record (periodic and final), the
 * text report, and "porttrace exhaustion FILE...".
 */
#define _GNU_SOURCE
#include <argp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "addr.h"
#include "exhaustion_int.h"
#include "cgroup.h"
#include "escape.h"
#include "json.h"
#include "log.h"
#include "logreader.h"
#include "names.h"
#include "options.h"
#include "output.h"
#include "pipeline.h"

/* ---- JSON ---- */

/* What a pool's record needs after its destinations: "more_dests" and
 * SNAP_PROCS processes of at most 26 + 98 (a name of 16 bytes, each
 * escaped to 6) + 50 bytes. */
#define POOL_TAIL_ROOM (SNAP_PROCS * 192 + 64)
/* A whole pool without destinations: its header and check, its own row
 * (its top processes included) and its tail. */
#define POOL_ROOM (2048 + POOL_TAIL_ROOM)

static void jw_procs(struct json *w, const struct exhaustion_proc *v, size_t n)
{
	json__printf(w, "[");
	for (size_t i = 0; i < n; i++) {
		json__printf(w, "%s{\"pid\":%u,\"comm\":", i ? "," : "", v[i].pid);
		json__string(w, v[i].comm, sizeof(v[i].comm));
		json__printf(w, ",\"held\":%u,\"failures\":%llu}", v[i].held, v[i].failures);
	}
	json__printf(w, "]");
}

static void jw_check(struct json *w, const struct pool_check *c)
{
	json__printf(w, "\"kernel\":%lu,\"events\":%lu,\"missing\":%lu,\"extra\":%lu,\"persistent\":%lu,"
		  "\"agrees\":%s,\"tw_gone\":%lu",
	       c->kernel, c->events, c->missing, c->extra, c->persistent,
	       c->persistent ? "false" : "true", c->tw_gone);
	/* Only where there are any: a record must fit in a line. */
	if (c->srv_kernel || c->srv_events)
		json__printf(w, ",\"server_time_wait\":{\"kernel\":%lu,\"events\":%lu,\"missing\":%lu,"
			  "\"extra\":%lu}",
		       c->srv_kernel, c->srv_events, c->srv_missing, c->srv_extra);
}

static void jw_row(struct json *w, const struct exhaustion_row *r)
{
	char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN], ebuf[16];
	const char *err = names__errno(r->fail_err, ebuf, sizeof(ebuf));

	json__printf(w, "{");
	if (!r->any) {
		json__printf(w, "\"family\":%d,\"laddr\":\"%s\",\"raddr\":\"%s\",\"rport\":%u,",
		       r->family == AF_INET6 ? 6 : 4, addr__str(la, r->family, r->laddr),
		       addr__str(ra, r->family, r->raddr), r->rport);
	}
	json__printf(w, "\"occupancy\":%u,\"own\":%u,\"shared\":%u,\"pct\":%.1f,", r->occupancy, r->own,
	       r->shared, r->capacity ? 100.0 * r->occupancy / r->capacity : 0.0);
	if (r->any && r->server_tw)
		json__printf(w, "\"server_time_wait\":%u,", r->server_tw);
	if (!r->any && r->proto == IPPROTO_TCP)
		json__printf(w, "\"connecting\":%u,\"established\":%u,\"closing\":%u,\"time_wait\":%u,",
		       r->state[EXH_CONNECTING], r->state[EXH_ESTABLISHED], r->state[EXH_CLOSING],
		       r->state[EXH_TIME_WAIT]);
	json__printf(w, "\"peak\":%u,\"peak_t_ns\":%llu,\"alloc_per_s\":%.3f,\"release_per_s\":%.3f,",
	       r->peak, (unsigned long long)r->peak_ns, r->alloc_per_s, r->release_per_s);
	if (r->full_in_s < 0)
		json__printf(w, "\"full_in_s\":null,");
	else
		json__printf(w, "\"full_in_s\":%.1f,", r->full_in_s);
	json__printf(w, "\"failures\":%llu", r->failures);
	if (r->failures) {
		json__printf(w, ",\"err\":\"%s\",\"first_fail_t_ns\":%llu,\"last_fail_t_ns\":%llu",
		       err ? err : "", (unsigned long long)r->first_fail_ns,
		       (unsigned long long)r->last_fail_ns);
	}
	if (r->lat_n)
		json__printf(w, ",\"latency\":{\"n\":%llu,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu}",
		       r->lat_n, (unsigned long long)r->lat_p50_ns, (unsigned long long)r->lat_p90_ns,
		       (unsigned long long)r->lat_p99_ns);
	json__printf(w, ",\"procs\":");
	jw_procs(w, r->top, r->ntop);
	json__printf(w, "}");
}

/*
 * The record, one line:
 *   {"type":"exhaustion", "t_ns": figures as of this event time,
 *    "final": true for the end-of-run record, "interval_s", "warn_pct",
 *    "events", "lost" (events seen, kernel records lost), "warnings" (how
 *    many times a destination crossed warn_pct),
 *    "check": {"t_ns", "kernel", "events": ports counted by each,
 *              "missing": in the kernel only, "extra": in the events only,
 *              "persistent": of these, also different at the check before,
 *              "agrees": persistent == 0,
 *              "tw_gone": time-wait sockets gone before their time with
 *              no event (a RST in TIME-WAIT, or none was made), that this
 *              check found and gave back}      (live runs, after a check)
 *    "pools": [{"netns", "proto", "range": [lo, hi], "capacity" (range
 *        minus reserved), "reserved", "shared" (ports held by bind/listen
 *        and UDP, against every destination), "retired_dests" (destinations
 *        retired after holding nothing for 60 s: their rows are gone),
 *        "retired_failures" (the failures of those),
 *        "all": the pool's own row: what a destination never seen finds,
 *               with bind(0) EADDRINUSE failures,
 *        "dests": [{"family", "laddr", "raddr", "rport",
 *            "occupancy" (own + shared), "own", "shared", "pct",
 *            "connecting", "established", "closing", "time_wait" (TCP),
 *            "peak", "peak_t_ns", "alloc_per_s", "release_per_s" (own
 *            ports, over the last 10 s), "full_in_s" (at the net rate of
 *            own and shared ports; null: not filling up),
 *            "failures", "err", "first_fail_t_ns", "last_fail_t_ns",
 *            "latency": {"n", "p50_ns", "p90_ns", "p99_ns"} (connect(),
 *                       the whole run),
 *            "procs": [{"pid", "comm", "held", "failures"}]}, ...],
 *        "more_dests": destinations left out to keep the line short,
 *        "procs": the pool's processes by ports held}],
 *    "more_pools": pools left out because not even their own rows fitted
 *                  the line (only when there are some)}
 * Times are CLOCK_MONOTONIC ns, as in events. "type" comes first: the log
 * reader skips the record after reading it.
 */
int exhaustion__json(struct exhaustion *e, __u64 now_ns, bool final, char *buf, size_t cap, FILE *f)
{
	struct json w;
	struct exhaustion_row *rows;
	__u64 ref = final || !now_ns ? e->last_ns : now_ns;
	size_t n, i = 0, pools_left = 0, more_pools = 0;

	if (buf)
		json__fixed(&w, buf, cap, cap > 1024 ? cap - 512 : cap);
	else if (json__growing(&w, 64 * 1024))
		return -ENOMEM;
	/* A periodic record lists SNAP_DESTS destinations a pool: no more
	 * rows are made, whatever the number of destinations. */
	rows = exhaustion__rows_top(e, ref, buf && !final ? SNAP_DESTS : 0, &n);
	json__printf(&w, "{\"type\":\"exhaustion\",\"t_ns\":%llu,\"final\":%s,\"interval_s\":%.3f,\"warn_pct\":%.0f,"
		   "\"events\":%llu,\"lost\":%llu,\"warnings\":%lu",
	       (unsigned long long)ref, final ? "true" : "false", e->o.interval_s,
	       e->o.warn_frac * 100, e->events, e->lost, e->nwarn);
	if (e->checked) {
		json__printf(&w, ",\"check\":{\"t_ns\":%llu,", (unsigned long long)e->check_ns);
		jw_check(&w, &e->chk);
		json__printf(&w, ",\"unreachable\":%lu,\"dump_ns\":%llu,\"apply_ns\":%llu}",
		       e->check_unreachable, (unsigned long long)e->check_dump_ns,
		       (unsigned long long)e->check_apply_ns);
	}
	json__printf(&w, ",\"pools\":[");
	for (size_t k = 0; rows && k < n; k++)
		pools_left += rows[k].any;
	/* Full already: the record's own figures did not fit. */
	while (rows && i < n && !json__full(&w)) {
		const struct exhaustion_row *pr = &rows[i];
		size_t pool_mark = json__mark(&w);
		const struct xpool *p = pool_find(e, pr->netns, pr->proto);
		struct exhaustion_proc *procs = NULL;
		size_t np = p ? pool_procs(p, ref, &procs) : 0, nd = 0, more = 0, j;

		json__printf(&w, "%s{\"netns\":%u,\"proto\":\"%s\",\"range\":[%u,%u],\"capacity\":%u,"
			   "\"reserved\":%u,\"shared\":%u,\"retired_dests\":%llu,"
			   "\"retired_failures\":%llu,\"all\":",
		       i ? "," : "", pr->netns, names__proto(pr->proto), pr->range_lo, pr->range_hi,
		       pr->capacity, pr->reserved, pr->shared, p ? p->retired : 0ULL,
		       p ? p->retired_failures : 0ULL);
		jw_row(&w, pr);
		if (e->checked && p) {
			json__printf(&w, ",\"check\":{\"reachable\":%s,", p->chk.reachable ? "true" : "false");
			jw_check(&w, &p->chk);
			json__printf(&w, "}");
		}
		json__printf(&w, ",\"dests\":[");
		/* The destinations stop short of the room this pool's closing
		 * and every pool after it need: pools come first, and a line
		 * that ends in the middle of one is no record. */
		pools_left--;
		json__keep(&w, POOL_TAIL_ROOM + pools_left * POOL_ROOM);
		for (j = i + 1; j < n && !rows[j].any; j++) {
			size_t mark = json__mark(&w);

			/* The pool itself did not fit: the record is lost, and
			 * a destination must not clear what says so. */
			if (json__full(&w))
				break;
			if (more || (buf && nd >= SNAP_DESTS && !final)) {
				more++;
				continue;
			}
			json__printf(&w, "%s", nd ? "," : "");
			jw_row(&w, &rows[j]);
			if (json__full(&w) && buf) {
				/* Fewer destinations, still a whole line. */
				json__cut(&w, mark);
				more++;
				continue;
			}
			nd++;
		}
		json__keep(&w, 0);
		json__printf(&w, "],\"more_dests\":%zu,\"procs\":", more + pr->dests - (j - i - 1));
		jw_procs(&w, procs, buf && np > SNAP_PROCS ? SNAP_PROCS : np);
		json__printf(&w, "}");
		free(procs);
		if (json__full(&w)) {
			/* Not even the pool's own rows fit: it and the pools
			 * after it are counted, not written. */
			json__cut(&w, pool_mark);
			for (; i < n; i++)
				more_pools += rows[i].any;
			break;
		}
		i = j;
	}
	json__unlimit(&w);	/* room kept for the closing */
	json__printf(&w, "]");
	if (more_pools)
		json__printf(&w, ",\"more_pools\":%zu", more_pools);
	json__printf(&w, "}\n");
	free(rows);
	if (json__full(&w)) {
		json__free(&w);
		return -ENOSPC;
	}
	if (!buf)
		fwrite(json__buf(&w), 1, json__len(&w), f);
	n = json__len(&w);
	json__free(&w);
	return n;
}

int exhaustion__snapshot(struct exhaustion *e, __u64 now_ns, char *buf, size_t cap)
{
	if (!e->last_snap_ns) {
		e->last_snap_ns = now_ns;
		return 0;
	}
	if (now_ns - e->last_snap_ns < e->interval_ns)
		return 0;
	e->last_snap_ns = now_ns;
	return exhaustion__json(e, now_ns, false, buf, cap, NULL);
}

/* ---- the human report ---- */

static const char *fmt_secs(char *buf, size_t len, __u64 ts, __u64 base)
{
	if (!ts) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(buf, len, "%s%.3f", ts >= base ? "+" : "-",
		 (ts >= base ? ts - base : base - ts) / 1e9);
	return buf;
}

/* "127.0.0.1 > 10.0.0.1:443", "[::1] > [::1]:8080", or the pool's row. */
static const char *fmt_dest(char *buf, size_t len, const struct exhaustion_row *r)
{
	char la[INET6_ADDRSTRLEN], ra[ADDR_STRLEN];

	if (r->any) {
		snprintf(buf, len, "%s",
			 r->proto == IPPROTO_UDP ? "every destination (UDP)" : "any new destination");
		return buf;
	}
	snprintf(buf, len, "%s > %s", addr__str(la, r->family, r->laddr),
		 addr__str_port(ra, r->family, r->raddr, r->rport));
	return buf;
}

void exhaustion__set_names(struct exhaustion *e, struct cgroups *cg)
{
	e->cg = cg;
}

static void report_procs(FILE *f, struct cgroups *cg, const char *indent,
			 const struct exhaustion_proc *v, size_t n)
{
	char comm[ESCAPE_TEXT_LEN(PT_TASK_COMM_LEN)], name[ESCAPE_TEXT_LEN(160)];

	for (size_t i = 0; i < n; i++) {
		const struct cgroup_ident *id = cgroups__lookup(cg, v[i].cgroup_id);

		if (v[i].pid)
			fprintf(f, "%spid %u %s%s%s%s holds %u", i ? ", " : indent, v[i].pid,
				escape__text(comm, v[i].comm, sizeof(v[i].comm)),
				id && id->name[0] ? " [" : "", id ? escape__text(name, id->name, sizeof(id->name)) : "",
				id && id->name[0] ? "]" : "", v[i].held);
		else
			fprintf(f, "%sno process (time-wait, orphans) holds %u", i ? ", " : indent,
				v[i].held);
		if (v[i].failures)
			fprintf(f, ", failed %llu", v[i].failures);
	}
	if (n)
		fputc('\n', f);
}

static void report_dest_details(FILE *f, const struct exhaustion *e, const struct exhaustion_row *r,
				const struct xdest *d, __u64 base)
{
	char a[32], b[32], c[32], ebuf[16];

	if (!r->any && r->proto == IPPROTO_TCP && r->own)
		fprintf(f, "      connecting %u, established %u, closing %u, time-wait %u\n",
			r->state[EXH_CONNECTING], r->state[EXH_ESTABLISHED], r->state[EXH_CLOSING],
			r->state[EXH_TIME_WAIT]);
	if (r->lat_n) {
		fprintf(f, "      %s latency p50 %s, p90 %s, p99 %s (%llu calls)",
			r->proto == IPPROTO_TCP ? "connect()" : "autobind call",
			names__duration(r->lat_p50_ns, a, sizeof(a)),
			names__duration(r->lat_p90_ns, b, sizeof(b)),
			names__duration(r->lat_p99_ns, c, sizeof(c)), r->lat_n);
		if (d && d->wins) {
			unsigned long long k = d->wins->n > LAT_WINDOWS ? d->wins->n - LAT_WINDOWS : 0;

			fprintf(f, "; p99 by %gs window:", e->o.interval_s);
			for (; k < d->wins->n; k++)
				fprintf(f, " %s", names__duration(d->wins->p99[k % LAT_WINDOWS], a,
								  sizeof(a)));
			if (d->win.count)
				fprintf(f, " %s (now)",
					names__duration(hist__pct(&d->win, 99), a, sizeof(a)));
		}
		fputc('\n', f);
	}
	if (r->failures)
		fprintf(f, "      failures: %llu %s, first %s s, last %s s\n", r->failures,
			names__errno(r->fail_err, ebuf, sizeof(ebuf)) ?: "",
			fmt_secs(a, sizeof(a), r->first_fail_ns, base),
			fmt_secs(b, sizeof(b), r->last_fail_ns, base));
	report_procs(f, e->cg, "      ", r->top, r->ntop);
}

static const struct xdest *row_dest(const struct exhaustion *e, const struct exhaustion_row *r)
{
	const struct xpool *p = pool_find(e, r->netns, r->proto);

	if (!p)
		return NULL;
	if (r->any)
		return &p->any;
	return dest_find(e, p, r->family, r->laddr, r->raddr, r->rport);
}

void exhaustion__report(struct exhaustion *e, FILE *f)
{
	__u64 base = e->base_ns ? e->base_ns : e->first_ns;
	struct exhaustion_row *rows;
	char a[DEST_LEN], b[DEST_LEN];
	size_t n, i = 0;

	/* The fullest: a report of a hundred thousand rows is read by
	 * nobody; the JSON record has every one. */
	rows = exhaustion__rows_top(e, e->last_ns, REPORT_DESTS, &n);
	fprintf(f, "Port exhaustion: %llu events from %s to %s s, %llu lost; warn at %.0f%%\n",
		e->events, fmt_secs(a, sizeof(a), e->first_ns, base),
		fmt_secs(b, sizeof(b), e->last_ns, base), e->lost, e->o.warn_frac * 100);
	if (!n)
		fprintf(f, "No port was taken, held or refused.\n");
	while (rows && i < n) {
		const struct exhaustion_row *pr = &rows[i];
		const struct xpool *p = pool_find(e, pr->netns, pr->proto);
		struct exhaustion_proc *procs = NULL;
		size_t np = p ? pool_procs(p, e->last_ns, &procs) : 0, j, end;
		size_t w = strlen("DESTINATION (local > remote)");

		for (end = i + 1; end < n && !rows[end].any; end++)
			;
		for (j = i; j < end; j++) {
			size_t l = strlen(fmt_dest(a, sizeof(a), &rows[j]));

			w = l > w ? l : w;
		}
		fprintf(f, "\nnetns %u %s: ephemeral range %u-%u, capacity %u (%u reserved)\n", pr->netns,
			names__proto(pr->proto), pr->range_lo, pr->range_hi, pr->capacity, pr->reserved);
		fprintf(f, "  %-*s %11s %5s %6s %10s %8s %7s %8s\n", (int)w, "DESTINATION (local > remote)",
			"HELD/CAP", "USE", "PEAK", "PEAK AT", "ALLOC/s", "REL/s", "FULL IN");
		for (j = i; j < end; j++) {
			const struct exhaustion_row *r = &rows[j];
			char held[32], eta[32], at[32];

			snprintf(held, sizeof(held), "%u/%u", r->occupancy, r->capacity);
			fprintf(f, "  %-*s %11s %4.0f%% %6u %10s %8.1f %7.1f %8s\n", (int)w,
				fmt_dest(a, sizeof(a), r), held,
				r->capacity ? 100.0 * r->occupancy / r->capacity : 0.0, r->peak,
				fmt_secs(at, sizeof(at), r->peak_ns, base), r->alloc_per_s,
				r->release_per_s, names__eta(r->full_in_s, false, eta, sizeof(eta)));
			report_dest_details(f, e, r, row_dest(e, r), base);
		}
		if (pr->dests > end - i - 1)
			fprintf(f, "  ... %zu more destinations, less full (--format json lists every one)\n",
				pr->dests - (end - i - 1));
		if (pr->server_tw)
			fprintf(f, "  server-side time-wait %u: on listeners' ports, no ephemeral port; each blocks a bind() of its port without SO_REUSEADDR\n",
				pr->server_tw);
		if (p && p->retired)
			fprintf(f, "  %llu more destinations held nothing for %llu s and were retired, with %llu failures\n",
				p->retired, DEST_RETIRE_NS / NS_PER_S, p->retired_failures);
		if (np) {
			fprintf(f, "  processes:\n");
			report_procs(f, e->cg, "    ", procs, np > REPORT_PROCS ? REPORT_PROCS : np);
		}
		free(procs);
		i = end;
	}
	if (e->nwarn) {
		fprintf(f, "\nWarnings (%lu; a destination crossed %.0f%%):\n", e->nwarn, e->o.warn_frac * 100);
		for (unsigned long k = 0; k < e->nwarn && k < MAX_WARNINGS; k++) {
			const struct warning *wn = &e->warns[k];
			struct exhaustion_row r = {.any = wn->any, .proto = wn->proto, .family = wn->family,
						   .rport = wn->rport};

			memcpy(r.laddr, wn->laddr, 16);
			memcpy(r.raddr, wn->raddr, 16);
			fprintf(f, "  %s s netns %u %s %s: %u/%u\n", fmt_secs(a, sizeof(a), wn->ts, base),
				wn->netns, names__proto(wn->proto), fmt_dest(b, sizeof(b), &r), wn->occupancy,
				wn->capacity);
		}
	}
	if (e->checked) {
		const struct pool_check *c = &e->chk;

		if (c->persistent)
			fprintf(f, "\nCheck against the kernel's socket table at %s s: DIFFERS by %lu ports (events count %lu, kernel %lu; %lu missing, %lu extra)\n",
				fmt_secs(a, sizeof(a), e->check_ns, base), c->persistent, c->events,
				c->kernel, c->missing, c->extra);
		else
			fprintf(f, "\nCheck against the kernel's socket table at %s s: agrees (%lu ports%s)\n",
				fmt_secs(a, sizeof(a), e->check_ns, base), c->kernel,
				c->missing || c->extra ? "; a few in flight" : "");
		for (size_t k = 0; c->persistent && k < e->npools; k++) {
			const struct xpool *p = e->pools[k];

			if (p->chk.persistent)
				fprintf(f, "  netns %u %s: events %lu, kernel %lu, differ by %lu\n",
					p->ns->inode, names__proto(p->proto), p->chk.events,
					p->chk.kernel, p->chk.persistent);
		}
		if (c->srv_kernel || c->srv_events)
			fprintf(f, "  server-side time-wait sockets: events %lu, kernel %lu%s\n",
				c->srv_events, c->srv_kernel,
				c->srv_missing || c->srv_extra ? " (differ)" : ", agree");
		fprintf(f, "  it took %.1f ms reading the kernel's tables (on a thread of its own) and %.1f ms comparing\n",
			e->check_dump_ns / 1e6, e->check_apply_ns / 1e6);
		if (e->check_unreachable)
			fprintf(f, "  (%lu ports counted in namespaces it cannot read any more)\n",
				e->check_unreachable);
		if (e->tw_gone)
			fprintf(f, "  time-wait sockets gone before their time with no event (a RST in TIME-WAIT), found by the checks and given back: %llu\n",
				e->tw_gone);
	}
	if (e->untracked)
		fprintf(f, "\n%llu sockets were not followed (memory limits); figures are low.\n",
			e->untracked);
	free(rows);
	fflush(f);
}

/* ---- porttrace exhaustion FILE ---- */

struct ex_args {
	struct exhaustion_opts o;
	enum output_format fmt;
	char **files;
	int nfiles;
};

static const struct argp_option ex_options[] = {
	{"format", 'f', "FMT", 0, "text (default) or json (one record, as the log's final one)", 0},
	{"warn", 'w', "PCT", 0, "Warning threshold, 1..100, e.g. 80 or 80% (default 80)", 0},
	{"interval", 'i', "SECONDS", 0,
	 "Latency windows, as --interval of the live run (default 10)", 0},
	{},
};

static error_t ex_parse(int key, char *arg, struct argp_state *state)
{
	struct ex_args *a = state->input;

	switch (key) {
	case 'f':
		if (output__parse_format(arg, &a->fmt) || a->fmt == OUTPUT_CSV)
			argp_error(state, "invalid format '%s': expected text or json", arg);
		break;
	case 'w':
		options__warn(state, arg, &a->o.warn_frac);
		break;
	case 'i':
		options__interval(state, arg, &a->o.interval_s);
		break;
	default:
		if (!options__files(key, state, &a->files, &a->nfiles))
			return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

int exhaustion__main(int argc, char **argv)
{
	static const struct argp argp = {
		.options = ex_options,
		.parser = ex_parse,
		.args_doc = "FILE...",
		.doc = "Port exhaustion figures from porttrace JSON logs (-o FILE --format json),\n"
		       "rotated and compressed pieces included: the same figures as the report of\n"
		       "the live run (--exhaustion) that wrote them.\v"
		       "Example:\n  porttrace exhaustion /var/log/porttrace.jsonl --format json",
	};
	struct ex_args a = {.o = {.warn_frac = 0.8, .interval_s = 10}, .fmt = OUTPUT_TEXT};
	struct logreader *r = NULL;
	struct exhaustion *e = NULL;
	struct pipeline *pipe = NULL;
	int ret = 1;

	argp_err_exit_status = 2;
	argp_parse(&argp, argc, argv, 0, NULL, &a);

	r = logreader__new();
	e = exhaustion__new(&a.o);
	if (e)
		pipe = pipeline__new(&(struct pipeline_opts){.ex = e});
	if (!r || !pipe) {
		p_err("out of memory");
		goto cleanup;
	}
	/* The log holds the derived events already: nothing is derived again. */
	if (logreader__read_all(r, a.files, a.nfiles, pipeline__event, pipe) < 0)
		goto cleanup;
	pipeline__end(pipe, 0);
	if (logreader__start_mono_ns(r))
		exhaustion__set_base(e, logreader__start_mono_ns(r));
	if (a.fmt == OUTPUT_JSON) {
		if (exhaustion__json(e, 0, true, NULL, 0, stdout) < 0) {
			p_err("out of memory");
			goto cleanup;
		}
	} else {
		exhaustion__report(e, stdout);
	}
	ret = 0;
cleanup:
	pipeline__free(pipe);
	exhaustion__free(e);
	logreader__free(r);
	return ret;
}

