// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * The report as one HTML page: inline SVG, CSS and a few lines of script,
 * nothing fetched (a Content-Security-Policy says so to the browser too).
 * Colours are Okabe and Ito's, told apart with the common colour-vision
 * deficiencies; time-wait is hatched as well, and every chart has <title>s
 * and a table of its figures.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "addr.h"
#include "escape.h"
#include "names.h"
#include "output.h"
#include "report.h"

#define W 960		/* chart width, px */
#define LM 56		/* left margin: the y axis */
#define RM 44	/* room for the last time label */
#define OCC_H 220
#define LAT_H 110
#define LANE_H 8
#define TOP 18
#define BOTTOM 34	/* the time axis */
#define MAX_TABLE_PROCS 50

/* ---- text ---- */

/*
 * Names are first made safe for people by the one escaper every output
 * uses (control bytes, bidirectional controls and invalid UTF-8 shown as
 * \xNN); what is left to do for a page is markup.
 */
void report_html__text(FILE *f, const char *s, size_t max)
{
	char stack[ESCAPE_TEXT_LEN(128)], *buf = stack;
	size_t n = strnlen(s, max);

	if (n > 128 && !(buf = malloc(ESCAPE_TEXT_LEN(n)))) {
		fputs("?", f);
		return;
	}
	escape__text(buf, s, n);
	for (const char *p = buf; *p; p++) {
		switch (*p) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*p, f);
		}
	}
	if (buf != stack)
		free(buf);
}

static void esc(FILE *f, const char *s)
{
	report_html__text(f, s, strlen(s));
}

/* Our own text, in printf form, escaped all the same. */
static void __attribute__((format(printf, 2, 3))) escf(FILE *f, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	esc(f, buf);
}

/* ---- times ---- */

static double rel_s(const struct report_view *v, __u64 ts)
{
	return ts >= v->t0_ns ? (ts - v->t0_ns) / 1e9 : -((v->t0_ns - ts) / 1e9);
}

/* "07:22:07.123" (UTC), "" without a wall clock. full: with the date. */
static const char *wall(const struct report_view *v, __u64 ts, bool full, char *buf, size_t len)
{
	__u64 rt;
	time_t sec;
	struct tm tm;
	size_t n;

	buf[0] = '\0';
	if (!v->realtime0_ns)
		return buf;
	rt = v->realtime0_ns + (ts >= v->t0_ns ? ts - v->t0_ns : 0);
	sec = rt / 1000000000ULL;
	if (!gmtime_r(&sec, &tm))
		return buf;
	n = strftime(buf, len, full ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03llu%s", (unsigned long long)(rt / 1000000 % 1000),
		 full ? " UTC" : "");
	return buf;
}

/* "07:22:07.123 UTC (+1.234 s)" or "+1.234 s". */
static const char *when(const struct report_view *v, __u64 ts, char *buf, size_t len)
{
	char w[64];

	if (v->realtime0_ns)
		snprintf(buf, len, "%s (%+.3f s)", wall(v, ts, false, w, sizeof(w)), rel_s(v, ts));
	else
		snprintf(buf, len, "%+.3f s", rel_s(v, ts));
	return buf;
}

/* ---- names ---- */

static const char *dest_name(const struct exhaustion_sample *s, char *buf, size_t len)
{
	char la[INET6_ADDRSTRLEN], ra[ADDR_STRLEN];

	if (s->any) {
		snprintf(buf, len, "%s (netns %u)",
			 s->proto == IPPROTO_UDP ? "every destination, UDP" : "any new destination, TCP",
			 s->netns);
		return buf;
	}
	snprintf(buf, len, "%s > %s %s (netns %u)", addr__str(la, s->family, s->laddr),
		 addr__str_port(ra, s->family, s->raddr, s->rport), names__proto(s->proto), s->netns);
	return buf;
}

static const char *errname(int err, char *buf, size_t len)
{
	const char *s = names__errno(err, buf, len);

	return s ? s : "-";
}

/* ---- scales ---- */

struct xscale {
	__u64 t0, t1;
};

static double xpos(const struct xscale *x, __u64 ts)
{
	if (ts <= x->t0)
		return LM;
	if (ts >= x->t1)
		return W - RM;
	return LM + (double)(ts - x->t0) / (x->t1 - x->t0) * (W - LM - RM);
}

/* A round step for about n ticks over span. */
static double nice_step(double span, int n)
{
	double raw = span / n, p = 1;

	while (p * 10 <= raw)
		p *= 10;
	while (p > raw)
		p /= 10;
	return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

static void time_axis(FILE *f, const struct report_view *v, const struct xscale *x, int y)
{
	double span = (x->t1 - x->t0) / 1e9, step = nice_step(span > 0 ? span : 1, 8);
	char w[64];

	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", LM, y, W - RM, y);
	for (double t = 0; t <= span + 1e-9; t += step) {
		double px = xpos(x, x->t0 + (__u64)(t * 1e9));

		fprintf(f, "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", px, y, px,
			y + 4);
		fprintf(f, "<text class=\"tl\" x=\"%.1f\" y=\"%d\">+%gs</text>", px, y + 15, t);
		if (v->realtime0_ns)
			fprintf(f, "<text class=\"tl wall\" x=\"%.1f\" y=\"%d\">%s</text>", px, y + 27,
				wall(v, x->t0 + (__u64)(t * 1e9), false, w, sizeof(w)));
	}
}

/* ---- occupancy and latency of one destination ---- */

enum layer { L_SHARED, L_EST, L_CONN, L_CLOSING, L_TW, L_LAYERS };

static const char *const layer_class[L_LAYERS] = {"shared", "established", "connecting", "closing",
						  "timewait"};
static const char *const layer_name[L_LAYERS] = {
	"bound, listening or UDP (counts against every destination)", "established", "connecting",
	"closing", "time-wait"};

static unsigned int layer_value(const struct report_bucket *b, int l)
{
	switch (l) {
	case L_SHARED: return b->shared;
	case L_EST: return b->state[EXH_ESTABLISHED];
	case L_CONN: return b->state[EXH_CONNECTING];
	case L_CLOSING: return b->state[EXH_CLOSING];
	default: return b->state[EXH_TIME_WAIT];
	}
}

static void occupancy_chart(FILE *f, const struct report_view *v, const struct report_series *s,
			    const struct xscale *x, int idx)
{
	unsigned int ymax = 0, cap = s->last.capacity;
	double ys, base = TOP + OCC_H;
	bool cap_shown;
	char a[64], b[64], e[16];

	for (unsigned int i = 0; i < v->nb; i++)
		if (s->b[i].max > ymax)
			ymax = s->b[i].max;
	/* Far from full (a quarter or less), the scale is the data's: the
	 * shape shows, and the capacity is said in words above it. */
	cap_shown = cap && (__u64)ymax * 4 > cap;
	if (cap_shown && cap > ymax)
		ymax = cap;
	ymax = ymax ? ymax + (ymax + 19) / 20 : 1;
	ys = (double)OCC_H / ymax;
	fprintf(f, "<svg class=\"chart occ\" viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"occ%d-t\" "
		   "data-span=\"%.6f\">",
		W, TOP + OCC_H + BOTTOM, idx, (x->t1 - x->t0) / 1e9);
	fprintf(f, "<title id=\"occ%d-t\">Ports held over time, stacked by state, against capacity %u</title>",
		idx, cap);
	/* Stacked layers: each a polygon, steps along its top and bottom. */
	for (int l = 0; l < L_LAYERS; l++) {
		bool any = false;

		for (unsigned int i = s->since; i < v->nb && !any; i++)
			any = layer_value(&s->b[i], l) != 0;
		if (!any)
			continue;
		fprintf(f, "<path class=\"area %s\" d=\"", layer_class[l]);
		for (unsigned int i = s->since; i < v->nb; i++) {
			unsigned int top = 0;

			for (int k = 0; k <= l; k++)
				top += layer_value(&s->b[i], k);
			fprintf(f, "%s%.1f %.1f H%.1f", i == s->since ? "M" : "L",
				xpos(x, v->t0_ns + (__u64)i * v->width_ns), base - top * ys,
				xpos(x, v->t0_ns + (__u64)(i + 1) * v->width_ns));
		}
		for (unsigned int i = v->nb; i-- > s->since;) {
			unsigned int bot = 0;

			for (int k = 0; k < l; k++)
				bot += layer_value(&s->b[i], k);
			fprintf(f, "L%.1f %.1f H%.1f", xpos(x, v->t0_ns + (__u64)(i + 1) * v->width_ns),
				base - bot * ys, xpos(x, v->t0_ns + (__u64)i * v->width_ns));
		}
		fprintf(f, "Z\"><title>%s</title></path>", layer_name[l]);
	}
	/* The highest within each bucket, where it is above the bucket's end. */
	fprintf(f, "<path class=\"maxline\" d=\"");
	for (unsigned int i = s->since; i < v->nb; i++)
		fprintf(f, "%s%.1f %.1f H%.1f", i == s->since ? "M" : "L",
			xpos(x, v->t0_ns + (__u64)i * v->width_ns), base - s->b[i].max * ys,
			xpos(x, v->t0_ns + (__u64)(i + 1) * v->width_ns));
	fprintf(f, "\"><title>highest number of ports held within each time bucket</title></path>");
	if (cap && !cap_shown) {
		fprintf(f, "<text class=\"lbl offscale\" data-capacity=\"%u\" x=\"%d\" y=\"%d\">", cap,
			W - RM - 4, TOP - 3);
		escf(f, "capacity %u, far above this scale (at most %u held, %.1f%%)", cap, s->last.peak,
		     100.0 * s->last.peak / cap);
		fprintf(f, "</text>");
	} else if (cap) {
		double y = base - cap * ys, yw = base - cap * v->st.warn_frac * ys;

		fprintf(f, "<line class=\"capacity\" data-capacity=\"%u\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\">"
			   "<title>capacity: %u ports</title></line>",
			cap, LM, y, W - RM, y, cap);
		fprintf(f, "<text class=\"lbl\" x=\"%d\" y=\"%.1f\">capacity %u</text>", W - RM - 4, y - 3, cap);
		fprintf(f, "<line class=\"warnline\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\">"
			   "<title>warning threshold: %.0f%% (%.0f ports)</title></line>",
			LM, yw, W - RM, yw, v->st.warn_frac * 100, cap * v->st.warn_frac);
	}
	/* Failures, one mark per bucket that had any, with the count. */
	for (unsigned int i = s->since; i < v->nb; i++) {
		const struct report_bucket *bk = &s->b[i];
		double px;

		if (!bk->failures)
			continue;
		px = (xpos(x, v->t0_ns + (__u64)i * v->width_ns) +
		      xpos(x, v->t0_ns + (__u64)(i + 1) * v->width_ns)) / 2;
		fprintf(f, "<path class=\"fail\" data-count=\"%llu\" d=\"M%.1f %d l-5 -9 h10 z\"><title>",
			bk->failures, px, TOP + 9);
		escf(f, "%llu failed (%s) between %s and %s", bk->failures,
		     errname(s->last.fail_err, e, sizeof(e)),
		     when(v, v->t0_ns + (__u64)i * v->width_ns, a, sizeof(a)),
		     when(v, v->t0_ns + (__u64)(i + 1) * v->width_ns, b, sizeof(b)));
		fprintf(f, "</title></path>");
	}
	if (s->last.peak) {
		double px = xpos(x, s->last.peak_ns), py = base - s->last.peak * ys;

		fprintf(f, "<circle class=\"peak\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"><title>", px, py);
		escf(f, "peak: %u of %u ports at %s", s->last.peak, cap, when(v, s->last.peak_ns, a, sizeof(a)));
		fprintf(f, "</title></circle>");
	}
	/* The forecast: the net rate of the last 10 s carried on to capacity,
	 * as far as the chart reaches. */
	if (s->full_in_s > 0 && cap > s->last.occupancy && x->t1 > v->end_ns) {
		double rate = (cap - s->last.occupancy) / s->full_in_s;
		double secs = (x->t1 - v->end_ns) / 1e9;
		char eta[32];

		if (secs > s->full_in_s)
			secs = s->full_in_s;
		fprintf(f, "<path class=\"forecast\" d=\"M%.1f %.1f L%.1f %.1f\"><title>",
			xpos(x, v->end_ns), base - s->last.occupancy * ys,
			xpos(x, v->end_ns + (__u64)(secs * 1e9)),
			base - (s->last.occupancy + rate * secs) * ys);
		escf(f, "forecast: full in %s at the net rate of the last 10 s (%.1f ports/s)",
		     names__eta(s->full_in_s, false, eta, sizeof(eta)), rate);
		fprintf(f, "</title></path>");
	}
	/* The y axis. */
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\"/>", LM, TOP, LM, base);
	{
		double step = nice_step(ymax, 4);

		if (step < 1)
			step = 1;
		for (double y = 0; y <= ymax; y += step)
			fprintf(f, "<text class=\"yl\" x=\"%d\" y=\"%.1f\">%g</text>", LM - 4, base - y * ys + 4, y);
	}
	fprintf(f, "<text class=\"ylab\" x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\">ports held</text>",
		TOP + OCC_H / 2, TOP + OCC_H / 2);
	time_axis(f, v, x, (int)base);
	fprintf(f, "</svg>\n");
}

static void latency_chart(FILE *f, const struct report_view *v, const struct report_series *s,
			  const struct xscale *x, int idx)
{
	__u64 ymax = 0;
	double base = TOP + LAT_H;
	char d[32];
	static const char *const cls[2] = {"p50", "p99"};

	for (unsigned int i = s->since; i < v->nb; i++)
		if (s->b[i].lat_p99_ns > ymax)
			ymax = s->b[i].lat_p99_ns;
	if (!ymax)
		return;
	ymax += ymax / 10;
	fprintf(f, "<svg class=\"chart lat\" viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"lat%d-t\" "
		   "data-span=\"%.6f\">",
		W, TOP + LAT_H + BOTTOM, idx, (x->t1 - x->t0) / 1e9);
	fprintf(f, "<title id=\"lat%d-t\">connect() latency over time: p50 and p99 of the calls in each time bucket</title>",
		idx);
	for (int k = 0; k < 2; k++) {
		bool pen = false;

		fprintf(f, "<path class=\"latline %s\" d=\"", cls[k]);
		for (unsigned int i = s->since; i < v->nb; i++) {
			__u64 val = k ? s->b[i].lat_p99_ns : s->b[i].lat_p50_ns;

			if (!s->b[i].lat_n) {
				pen = false;
				continue;
			}
			fprintf(f, "%s%.1f %.1f H%.1f", pen ? "L" : "M",
				xpos(x, v->t0_ns + (__u64)i * v->width_ns), base - (double)val / ymax * LAT_H,
				xpos(x, v->t0_ns + (__u64)(i + 1) * v->width_ns));
			pen = true;
		}
		fprintf(f, "\"><title>%s of connect() latency per time bucket</title></path>", cls[k]);
	}
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\"/>", LM, TOP, LM, base);
	fprintf(f, "<path class=\"latline p50\" d=\"M%d %d h24\"/><text class=\"lbl\" x=\"%d\" y=\"%d\">p50</text>"
		   "<path class=\"latline p99\" d=\"M%d %d h24\"/><text class=\"lbl\" x=\"%d\" y=\"%d\">p99</text>",
		W - RM - 120, TOP + 4, W - RM - 124, TOP + 8, W - RM - 40, TOP + 4, W - RM - 44, TOP + 8);
	fprintf(f, "<text class=\"yl\" x=\"%d\" y=\"%d\">%s</text>", LM - 4, TOP + 4,
		names__duration(ymax, d, sizeof(d)));
	fprintf(f, "<text class=\"yl\" x=\"%d\" y=\"%.1f\">0</text>", LM - 4, base + 4);
	fprintf(f, "<text class=\"ylab\" x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\">latency</text>",
		TOP + LAT_H / 2, TOP + LAT_H / 2);
	time_axis(f, v, x, (int)base);
	fprintf(f, "</svg>\n");
}

static void dest_table(FILE *f, const struct report_view *v, const struct report_series *s)
{
	char a[64], d1[32], d2[32];

	fprintf(f, "<details><summary>Figures of this chart (%u time buckets of %s)</summary>"
		   "<table class=\"fig\"><thead><tr><th>from</th><th>shared</th><th>connecting</th>"
		   "<th>established</th><th>closing</th><th>time-wait</th><th>held at end</th>"
		   "<th>highest</th><th>capacity</th><th>failures</th><th>calls</th><th>p50</th>"
		   "<th>p99</th></tr></thead><tbody>\n",
		v->nb - s->since, names__duration(v->width_ns, d1, sizeof(d1)));
	for (unsigned int i = s->since; i < v->nb; i++) {
		const struct report_bucket *b = &s->b[i];

		fprintf(f, "<tr><td>");
		esc(f, when(v, v->t0_ns + (__u64)i * v->width_ns, a, sizeof(a)));
		fprintf(f, "</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
			   "<td>%u</td><td>%llu</td><td>%llu</td><td>%s</td><td>%s</td></tr>\n",
			b->shared, b->state[EXH_CONNECTING], b->state[EXH_ESTABLISHED],
			b->state[EXH_CLOSING], b->state[EXH_TIME_WAIT], b->occupancy, b->max, b->capacity,
			b->failures, b->lat_n,
			b->lat_n ? names__duration(b->lat_p50_ns, d1, sizeof(d1)) : "-",
			b->lat_n ? names__duration(b->lat_p99_ns, d2, sizeof(d2)) : "-");
	}
	fprintf(f, "</tbody></table></details>\n");
}

/* ---- processes ---- */

struct procs {
	struct timeline_proc_info *v;
	size_t n, cap;
};

static int proc_add(void *ctx, const struct timeline_proc_info *p)
{
	struct procs *ps = ctx;

	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 64;
		struct timeline_proc_info *v = realloc(ps->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n++] = *p;
	return 0;
}

/* Most held at once, then most taken, then most failures. */
static int proc_cmp(const void *a, const void *b)
{
	const struct timeline_proc_info *x = a, *y = b;

	if (x->peak != y->peak)
		return x->peak > y->peak ? -1 : 1;
	if (x->taken != y->taken)
		return x->taken > y->taken ? -1 : 1;
	if (x->failures != y->failures)
		return x->failures > y->failures ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

struct lives {
	struct timeline_life *v;
	size_t n, cap;
};

static int life_add(void *ctx, const struct timeline_life *l)
{
	struct lives *ls = ctx;

	if (!l->sk.lport && !l->failed)
		return 0;	/* no port ever picked: nothing to draw */
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? 2 * ls->cap : 64;
		struct timeline_life *v = realloc(ls->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ls->v = v;
		ls->cap = cap;
	}
	ls->v[ls->n++] = *l;
	return 0;
}

struct lane {
	__u16 port;
	unsigned int lives;
};

static int lane_busy_cmp(const void *a, const void *b)
{
	const struct lane *x = a, *y = b;

	if (x->lives != y->lives)
		return x->lives > y->lives ? -1 : 1;
	return x->port - y->port;
}

static int lane_port_cmp(const void *a, const void *b)
{
	return ((const struct lane *)a)->port - ((const struct lane *)b)->port;
}

static const char *state_class(unsigned int st)
{
	switch (st) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
	case TCP_NEW_SYN_RECV:
		return "connecting";
	case TCP_ESTABLISHED:
		return "established";
	case TCP_LISTEN:
	case TCP_CLOSE:
		return "shared";
	case TCP_TIME_WAIT:
		return "timewait";
	default:
		return "closing";
	}
}

static void seg(FILE *f, const struct xscale *x, __u64 from, __u64 to, int y, const char *cls)
{
	double x1 = xpos(x, from), x2 = xpos(x, to);

	if (x2 - x1 < 0.6)
		x2 = x1 + 0.6;
	fprintf(f, "<rect class=\"%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\"/>", cls, x1, y,
		x2 - x1, LANE_H - 1);
}

static void life_title(FILE *f, const struct report_view *v, const struct timeline_life *l)
{
	char a[64], b[64], ep[64], e[16];

	fprintf(f, "<title>");
	if (l->failed) {
		escf(f, "%s %s failed: %s at %s", names__proto(l->sk.proto),
		     l->sk.rport ? addr__str_port(ep, l->sk.family, l->sk.raddr, l->sk.rport) : "",
		     errname(l->err, e, sizeof(e)), when(v, l->taken_ns, a, sizeof(a)));
	} else {
		escf(f, "port %u %s%s%s, %s at %s", l->sk.lport, names__proto(l->sk.proto),
		     l->sk.rport ? " to " : "",
		     l->sk.rport ? addr__str_port(ep, l->sk.family, l->sk.raddr, l->sk.rport) : "",
		     l->how, when(v, l->taken_ns, a, sizeof(a)));
		for (unsigned int k = 0; k < l->nstates; k++)
			escf(f, "; %s at %s", names__tcp_state(l->state[k]),
			     when(v, l->state_ns[k], a, sizeof(a)));
		if (l->tw_ns)
			escf(f, "; time-wait from %s", when(v, l->tw_ns, a, sizeof(a)));
		if (l->released)
			escf(f, "; released at %s: %s%s", when(v, l->released_ns, b, sizeof(b)),
			     names__reason(l->reason), l->computed ? " (computed)" : "");
		else
			escf(f, "; still held at the end");
	}
	fprintf(f, "</title>");
}

/* One life on its lane: a segment per state, time-wait hatched. */
static void life_draw(FILE *f, const struct report_view *v, const struct xscale *x,
		      const struct timeline_life *l, int y)
{
	__u64 end = l->released ? l->released_ns : v->end_ns;
	__u64 stop = l->tw_ns ? l->tw_ns : end;
	__u64 t = l->taken_ns;

	fprintf(f, "<g class=\"life\">");
	life_title(f, v, l);
	if (l->nstates && l->sk.proto == IPPROTO_TCP) {
		if (l->state_ns[0] > t)
			seg(f, x, t, l->state_ns[0], y, "connecting");
		for (unsigned int k = 0; k < l->nstates; k++) {
			__u64 from = l->state_ns[k], to = k + 1 < l->nstates ? l->state_ns[k + 1] : stop;

			if (from >= stop)
				break;
			if (to > stop)
				to = stop;
			seg(f, x, from, to, y, state_class(l->state[k]));
		}
	} else if (stop > t || !l->tw_ns) {
		seg(f, x, t, stop, y, "shared");
	}
	if (l->tw_ns)
		seg(f, x, l->tw_ns, end, y, "timewait");
	fprintf(f, "</g>");
}

static void lives_table(FILE *f, const struct report_view *v, const struct timeline_life *ls,
			size_t n, const struct lane *lanes, unsigned int nlanes)
{
	char a[64], b[64], ep[64], e[16];

	fprintf(f, "<details><summary>These lives as a table</summary><table class=\"fig\"><thead><tr>"
		   "<th>port</th><th>how</th><th>destination</th><th>taken</th><th>time-wait</th>"
		   "<th>released</th><th>reason</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < n; i++) {
		const struct timeline_life *l = &ls[i];
		bool drawn = l->failed;

		for (unsigned int k = 0; k < nlanes && !drawn; k++)
			drawn = lanes[k].port == l->sk.lport;
		if (!drawn)
			continue;
		fprintf(f, "<tr><td>");
		if (l->failed)
			fprintf(f, "-");
		else
			fprintf(f, "%u", l->sk.lport);
		fprintf(f, "</td><td>");
		esc(f, l->failed ? "failed" : l->how);
		fprintf(f, "</td><td>");
		esc(f, l->sk.rport ? addr__str_port(ep, l->sk.family, l->sk.raddr, l->sk.rport) : "-");
		fprintf(f, "</td><td>");
		esc(f, when(v, l->taken_ns, a, sizeof(a)));
		fprintf(f, "</td><td>");
		esc(f, l->tw_ns ? when(v, l->tw_ns, b, sizeof(b)) : "-");
		fprintf(f, "</td><td>");
		esc(f, l->released ? when(v, l->released_ns, b, sizeof(b)) : l->failed ? "-" : "held at end");
		fprintf(f, "</td><td>");
		esc(f, l->failed ? errname(l->err, e, sizeof(e)) : l->released ? names__reason(l->reason) : "-");
		fprintf(f, "</td></tr>\n");
	}
	fprintf(f, "</tbody></table></details>\n");
}

static int proc_lanes(FILE *f, const struct report_view *v, struct timeline *tl,
		      const struct timeline_proc_info *p, const struct xscale *x)
{
	struct lives ls = {};
	struct lane *lanes = NULL;
	unsigned int nlanes = 0, drawn, fails = 0;
	int err, y, h;

	err = timeline__each_life(tl, p->key, life_add, &ls);
	if (err)
		goto out;
	lanes = calloc(ls.n ? ls.n : 1, sizeof(*lanes));
	if (!lanes) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ls.n; i++) {
		unsigned int k;

		if (ls.v[i].failed) {
			fails++;
			continue;
		}
		for (k = 0; k < nlanes && lanes[k].port != ls.v[i].sk.lport; k++)
			;
		if (k == nlanes)
			lanes[nlanes++].port = ls.v[i].sk.lport;
		lanes[k].lives++;
	}
	qsort(lanes, nlanes, sizeof(*lanes), lane_busy_cmp);
	drawn = nlanes < v->o->lanes ? nlanes : v->o->lanes;
	qsort(lanes, drawn, sizeof(*lanes), lane_port_cmp);

	h = TOP + (drawn + (fails ? 1 : 0)) * LANE_H + 8 + BOTTOM;
	fprintf(f, "<svg class=\"chart lanes\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", W, h);
	escf(f, "port lives of pid %u", p->pid);
	fprintf(f, "\" data-span=\"%.6f\"><title>", (x->t1 - x->t0) / 1e9);
	escf(f, "Ports of pid %u over time: one lane per port, each life coloured by state", p->pid);
	fprintf(f, "</title>");
	y = TOP;
	if (fails) {
		fprintf(f, "<g class=\"lane faillane\"><text class=\"yl\" x=\"%d\" y=\"%d\">failed</text>",
			LM - 4, y + LANE_H);
		for (size_t i = 0; i < ls.n; i++) {
			if (!ls.v[i].failed)
				continue;
			fprintf(f, "<g class=\"life\">");
			life_title(f, v, &ls.v[i]);
			fprintf(f, "<path class=\"fail\" data-count=\"1\" d=\"M%.1f %d l-3 -%d h6 z\"/></g>",
				xpos(x, ls.v[i].taken_ns), y + LANE_H, LANE_H);
		}
		fprintf(f, "</g>");
		y += LANE_H + 2;
	}
	for (unsigned int k = 0; k < drawn; k++, y += LANE_H) {
		fprintf(f, "<g class=\"lane\" data-port=\"%u\">", lanes[k].port);
		if (drawn <= 32 || k % 2 == 0)
			fprintf(f, "<text class=\"yl small\" x=\"%d\" y=\"%d\">%u</text>", LM - 4, y + LANE_H,
				lanes[k].port);
		for (size_t i = 0; i < ls.n; i++)
			if (!ls.v[i].failed && ls.v[i].sk.lport == lanes[k].port)
				life_draw(f, v, x, &ls.v[i], y);
		fprintf(f, "</g>");
	}
	time_axis(f, v, x, y + 6);
	fprintf(f, "</svg>\n");
	if (nlanes > drawn || p->folded)
		fprintf(f, "<p class=\"note\">%u ports of %u drawn (the busiest); %lu earlier released ports are folded into the counts above.</p>\n",
			drawn, nlanes, p->folded);
	lives_table(f, v, ls.v, ls.n, lanes, drawn);
out:
	free(ls.v);
	free(lanes);
	return err;
}

static void proc_name(FILE *f, const struct timeline_proc_info *p)
{
	fprintf(f, "pid %u ", p->pid);
	report_html__text(f, p->comm, sizeof(p->comm));
	if (p->cgroup)
		fprintf(f, " <span class=\"dim\">cgroup %llu</span>", (unsigned long long)p->cgroup);
}

static void proc_fails(FILE *f, const struct timeline_proc_info *p)
{
	char e[16];

	for (int k = 0; k < p->nfail; k++)
		escf(f, "%s%lu %s", k ? ", " : "", p->fail[k].n, errname(p->fail[k].err, e, sizeof(e)));
	if (!p->nfail)
		fprintf(f, "0");
}

/* ---- the page ---- */

static const char css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1000px;color:#111;background:#fff;padding:0 1em}"
	"h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}"
	"h3{font-size:1em;margin:1.2em 0 .3em}.dim,.meta,.note{color:#555}.note{font-size:.9em}"
	"svg.chart{width:100%;height:auto;display:block}"
	".answer{background:#f4f4f4;border-left:4px solid #000;padding:.5em 1em}"
	".answer li{margin:.2em 0}"
	".area.shared,rect.shared,.key.shared{fill:#009E73}"
	".area.established,rect.established,.key.established{fill:#0072B2}"
	".area.connecting,rect.connecting,.key.connecting{fill:#E69F00}"
	".area.closing,rect.closing,.key.closing{fill:#CC79A7}"
	".area.timewait,rect.timewait,.key.timewait{fill:url(#hatch)}"
	".maxline{fill:none;stroke:#000;stroke-width:1;stroke-dasharray:1 2}"
	".forecast{fill:none;stroke:#000;stroke-width:2;stroke-dasharray:3 3}.capacity{stroke:#000;stroke-width:2}.warnline{stroke:#000;stroke-width:1;stroke-dasharray:6 4}"
	".fail{fill:#D55E00;stroke:#000;stroke-width:.5}.peak{fill:none;stroke:#000;stroke-width:2}"
	".latline{fill:none;stroke-width:2}.latline.p50{stroke:#0072B2}.latline.p99{stroke:#D55E00;stroke-dasharray:5 2}"
	".axis,.tick{stroke:#333;stroke-width:1}.tl{font-size:11px;text-anchor:middle;fill:#333}.tl.wall{fill:#777}"
	".yl{font-size:11px;text-anchor:end;fill:#333}.yl.small{font-size:8px}.ylab{font-size:11px;text-anchor:middle;fill:#333}"
	".lbl{font-size:11px;text-anchor:end}"
	".legend{display:flex;flex-wrap:wrap;gap:1em;font-size:.9em;margin:.3em 0}.legend svg{vertical-align:middle}"
	"table{border-collapse:collapse;font-size:.9em;margin:.4em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
	"th{background:#eee}table.fig td{font-variant-numeric:tabular-nums}"
	".look{font-weight:bold}details{margin:.3em 0 1em}"
	"#cursor{position:fixed;pointer-events:none;background:#000;color:#fff;font-size:12px;padding:2px 5px;display:none}";

/* The one script: a readout of the time under the pointer. */
static const char script[] =
	"(function(){var c=document.getElementById('cursor');"
	"var t0=Number(document.body.dataset.rt0)||0;"
	"document.querySelectorAll('svg.chart').forEach(function(s){"
	"s.addEventListener('mousemove',function(ev){var r=s.getBoundingClientRect();"
	"var k=" "%d" "/r.width,x=(ev.clientX-r.left)*k;"
	"if(x<%d||x>%d){c.style.display='none';return;}"
	"var t=(x-%d)/(%d)*Number(s.dataset.span);"
	"var txt='+'+t.toFixed(3)+' s';"
	"if(t0){txt+='  '+new Date(t0+t*1000).toISOString().substr(11,12)+' UTC';}"
	"c.textContent=txt;c.style.left=(ev.clientX+12)+'px';c.style.top=(ev.clientY+12)+'px';c.style.display='block';});"
	"s.addEventListener('mouseleave',function(){c.style.display='none';});});})();";

static void legend(FILE *f)
{
	fprintf(f, "<div class=\"legend\">");
	for (int l = 0; l < L_LAYERS; l++)
		fprintf(f, "<span><svg width=\"14\" height=\"14\"><rect class=\"key %s\" width=\"14\" height=\"14\"/></svg> %s</span>",
			layer_class[l], layer_name[l]);
	fprintf(f, "<span><svg width=\"14\" height=\"14\"><path class=\"fail\" d=\"M7 12 l-5 -9 h10 z\"/></svg> failures (count in each mark)</span>"
		   "<span><svg width=\"24\" height=\"14\"><line class=\"capacity\" x1=\"0\" y1=\"7\" x2=\"24\" y2=\"7\"/></svg> capacity</span>"
		   "<span><svg width=\"24\" height=\"14\"><line class=\"warnline\" x1=\"0\" y1=\"7\" x2=\"24\" y2=\"7\"/></svg> warning threshold</span>"
		   "<span><svg width=\"24\" height=\"14\"><path class=\"maxline\" d=\"M0 7 H24\"/></svg> highest within a bucket</span>"
		   "<span><svg width=\"14\" height=\"14\"><circle class=\"peak\" cx=\"7\" cy=\"7\" r=\"4\"/></svg> peak</span>"
		   "<span><svg width=\"24\" height=\"14\"><path class=\"forecast\" d=\"M0 12 L24 2\"/></svg> forecast</span>"
		   "</div>\n");
}

/* Failures by errno over every process: the timelines' counts. */
static void failures_summary(FILE *f, const struct report_view *v, const struct procs *ps)
{
	struct {
		int err;
		unsigned long long n;
		__u64 first, last;
	} by[16];
	int nb = 0;
	unsigned long long other = 0;
	char a[64], b[64], e[16];

	for (size_t i = 0; i < ps->n; i++) {
		for (int k = 0; k < ps->v[i].nfail; k++) {
			int j;

			for (j = 0; j < nb && by[j].err != ps->v[i].fail[k].err; j++)
				;
			if (j == nb && nb == 16) {
				other += ps->v[i].fail[k].n;
				continue;
			}
			if (j == nb) {
				by[nb].err = ps->v[i].fail[k].err;
				by[nb].n = 0;
				by[nb].first = ps->v[i].fail[k].first_ns;
				by[nb++].last = ps->v[i].fail[k].last_ns;
			}
			by[j].n += ps->v[i].fail[k].n;
			if (ps->v[i].fail[k].first_ns < by[j].first)
				by[j].first = ps->v[i].fail[k].first_ns;
			if (ps->v[i].fail[k].last_ns > by[j].last)
				by[j].last = ps->v[i].fail[k].last_ns;
		}
	}
	fprintf(f, "<li id=\"sum-failures\"><b>Failures:</b> ");
	if (!nb)
		fprintf(f, "none");
	for (int j = 0; j < nb; j++) {
		fprintf(f, "%s<span class=\"failcount\" data-err=\"%s\" data-count=\"%llu\">", j ? "; " : "",
			errname(by[j].err, e, sizeof(e)), by[j].n);
		escf(f, "%llu %s, first at %s, last at %s", by[j].n, errname(by[j].err, e, sizeof(e)),
		     when(v, by[j].first, a, sizeof(a)), when(v, by[j].last, b, sizeof(b)));
		fprintf(f, "</span>");
	}
	if (other)
		fprintf(f, "; %llu of other kinds", other);
	fprintf(f, "</li>\n");
}

static void summary(FILE *f, const struct report_view *v, const struct procs *ps)
{
	char a[64], d[256], e[16];

	fprintf(f, "<section id=\"summary\"><h2>The answer first</h2><ul class=\"answer\">\n");
	if (v->ndests) {
		const struct exhaustion_sample *s = &v->dests[0]->last;

		fprintf(f, "<li id=\"sum-fullest\"><b>Fullest destination:</b> ");
		esc(f, dest_name(s, d, sizeof(d)));
		if (s->capacity)
			escf(f, ": peak %u of %u ports (%.0f%%) at %s", s->peak, s->capacity,
			     100.0 * s->peak / s->capacity, when(v, s->peak_ns, a, sizeof(a)));
		else
			escf(f, ": peak %u ports at %s (capacity unknown)", s->peak,
			     when(v, s->peak_ns, a, sizeof(a)));
		if (s->failures)
			escf(f, "; %llu failed (%s)", s->failures, errname(s->fail_err, e, sizeof(e)));
		fprintf(f, "</li>\n");
	} else {
		fprintf(f, "<li><b>No port</b> of an ephemeral range was taken, held or refused.</li>\n");
	}
	failures_summary(f, v, ps);
	fprintf(f, "<li><b>Processes holding most:</b> ");
	for (size_t i = 0; i < ps->n && i < 3; i++) {
		fprintf(f, "%s", i ? "; " : "");
		proc_name(f, &ps->v[i]);
		escf(f, ": peak %lu held at once, %lu taken, %lu failures", ps->v[i].peak,
		     ps->v[i].taken, ps->v[i].failures);
	}
	if (!ps->n)
		fprintf(f, "none seen");
	fprintf(f, "</li>\n<li id=\"sum-lost\"><b>Records lost:</b> ");
	if (v->st.lost)
		fprintf(f, "<span class=\"look\">%llu</span> (lost in the kernel: figures are low)", v->st.lost);
	else
		fprintf(f, "none");
	fprintf(f, "</li>\n</ul></section>\n");
}

static void listeners(FILE *f, const struct report_view *v)
{
	char a[64], ep[64], cls[64];

	fprintf(f, "<section id=\"listeners\"><h2>Listening exposure</h2>\n");
	if (!v->nlisteners) {
		fprintf(f, "<p>No socket listened (TCP) or stood bound to receive (UDP).</p></section>\n");
		return;
	}
	fprintf(f, "<p>The ones to look at first are on top: reachable from outside (wildcard) and inside the ephemeral range, where a client's autobind can take the port (cure: <code>ip_local_reserved_ports</code>).</p>\n"
		   "<table class=\"fig\" id=\"listen-table\"><thead><tr><th>owner</th><th>proto</th><th>address</th>"
		   "<th>scope</th><th>class</th><th>service</th><th>ephemeral range</th><th>reserved</th>"
		   "<th>since</th><th>until</th></tr></thead><tbody>\n");
	for (unsigned int i = 0; i < v->nlisteners; i++) {
		const struct report_listener *l = &v->listeners[i];
		const char *scope = output__listen_scope(l->sk.family, l->sk.laddr);
		const char *svc = names__service(l->sk.lport, l->sk.proto);
		bool look = l->in_range && !strcmp(scope, "wildcard") && !l->until_ns;

		fprintf(f, "<tr%s><td>", look ? " class=\"look\"" : "");
		if (l->owner_known && l->owner.pid) {
			fprintf(f, "pid %u ", l->owner.pid);
			report_html__text(f, l->owner.comm, sizeof(l->owner.comm));
		} else {
			fprintf(f, "-");
		}
		snprintf(cls, sizeof(cls), "%s", names__port_class(l->sk.lport));
		fprintf(f, "</td><td>%s%c</td><td>", names__proto(l->sk.proto),
			l->sk.family == AF_INET6 ? '6' : '4');
		esc(f, addr__str_port(ep, l->sk.family, l->sk.laddr, l->sk.lport));
		fprintf(f, "</td><td>%s</td><td>%s</td><td>", scope, cls);
		esc(f, svc ? svc : "-");
		fprintf(f, "</td><td>%s", l->in_range ? "<b>inside</b>" : "outside");
		if (l->sk.range_hi)
			fprintf(f, " (%u-%u)", l->sk.range_lo, l->sk.range_hi);
		fprintf(f, "</td><td>%s</td><td>", l->reserved ? "yes" : "no");
		esc(f, l->existing ? "before tracing" : when(v, l->from_ns, a, sizeof(a)));
		fprintf(f, "</td><td>");
		esc(f, l->until_ns ? when(v, l->until_ns, a, sizeof(a)) : "the end");
		fprintf(f, "</td></tr>\n");
	}
	fprintf(f, "</tbody></table>\n");
	if (v->listeners_dropped)
		fprintf(f, "<p class=\"note\">%llu more listeners not kept (at most %d).</p>\n",
			v->listeners_dropped, REPORT_LISTENERS);
	fprintf(f, "</section>\n");
}

static void processes(FILE *f, const struct report_view *v, struct timeline *tl,
		      const struct procs *ps, const struct xscale *x)
{
	unsigned long long rest_taken = 0, rest_fail = 0;
	size_t drawn = ps->n < v->o->procs ? ps->n : v->o->procs;

	fprintf(f, "<section id=\"processes\"><h2>Processes and their ports</h2>\n");
	if (!ps->n) {
		fprintf(f, "<p>No process took a port or failed to.</p></section>\n");
		return;
	}
	fprintf(f, "<p>One lane per port, each life from its allocation to its release, coloured by state (time-wait hatched); failed allocations as marks on the top lane. Hover for exact times, destination and reason.</p>\n");
	for (size_t i = 0; i < drawn; i++) {
		const struct timeline_proc_info *p = &ps->v[i];
		char a[64];

		fprintf(f, "<figure class=\"proc\" data-pid=\"%u\"><h3>", p->pid);
		proc_name(f, p);
		fprintf(f, "</h3><p>");
		escf(f, "%lu ports taken, peak %lu held at once at %s, %lu still held at the end, %lu ended in time-wait; failures: ",
		     p->taken, p->peak, when(v, p->peak_ns, a, sizeof(a)), p->held, p->time_wait);
		proc_fails(f, p);
		fprintf(f, "</p>\n");
		proc_lanes(f, v, tl, p, x);
		fprintf(f, "</figure>\n");
	}
	fprintf(f, "<h3>Every process</h3><table class=\"fig\" id=\"proc-table\"><thead><tr><th>process</th>"
		   "<th>taken</th><th>peak held</th><th>held at end</th><th>time-wait</th><th>failures</th>"
		   "</tr></thead><tbody>\n");
	for (size_t i = 0; i < ps->n; i++) {
		const struct timeline_proc_info *p = &ps->v[i];

		if (i >= MAX_TABLE_PROCS) {
			rest_taken += p->taken;
			rest_fail += p->failures;
			continue;
		}
		fprintf(f, "<tr><td>");
		proc_name(f, p);
		fprintf(f, "</td><td>%lu</td><td>%lu</td><td>%lu</td><td>%lu</td><td>", p->taken, p->peak,
			p->held, p->time_wait);
		proc_fails(f, p);
		fprintf(f, "</td></tr>\n");
	}
	if (ps->n > MAX_TABLE_PROCS)
		fprintf(f, "<tr><td>%zu more processes</td><td>%llu</td><td></td><td></td><td></td><td>%llu</td></tr>\n",
			ps->n - MAX_TABLE_PROCS, rest_taken, rest_fail);
	fprintf(f, "</tbody></table></section>\n");
}

int report_html__write(FILE *f, const struct report_view *v, struct timeline *tl)
{
	struct xscale x = {v->t0_ns, v->t0_ns + (__u64)(v->nb ? v->nb : 1) * v->width_ns};
	__u64 ahead = 0;
	struct procs ps = {};
	char a[64], b[64], d[256];
	const char *title = v->o->title ? v->o->title : "porttrace report";

	/* Room on the right for the forecasts, up to a quarter of the run. */
	for (unsigned int i = 0; i < v->ndests; i++) {
		double f = v->dests[i]->full_in_s;
		__u64 ns = f > 0 ? (__u64)(f * 1e9) : 0, most = (x.t1 - x.t0) / 4;

		if (ns > most)
			ns = most;
		if (ns > ahead)
			ahead = ns;
	}
	x.t1 += ahead;
	if (tl && timeline__each_proc(tl, proc_add, &ps))
		ps.n = 0;
	if (ps.n)
		qsort(ps.v, ps.n, sizeof(*ps.v), proc_cmp);

	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
		   "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>");
	esc(f, title);
	if (v->host) {
		fprintf(f, ": ");
		esc(f, v->host);
	}
	fprintf(f, "</title>\n<style>%s</style></head>\n<body data-rt0=\"%llu\">\n", css,
		(unsigned long long)(v->realtime0_ns / 1000000));
	/* The hatch for time-wait, defined once for every chart. */
	fprintf(f, "<svg width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs>"
		   "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
		   "<rect width=\"6\" height=\"6\" fill=\"#56B4E9\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#000\" stroke-width=\"2\"/>"
		   "</pattern></defs></svg>\n");
	fprintf(f, "<h1>");
	esc(f, title);
	fprintf(f, "</h1>\n<p class=\"meta\">");
	if (v->host) {
		fprintf(f, "host ");
		esc(f, v->host);
		fprintf(f, " · ");
	}
	if (v->realtime0_ns)
		escf(f, "from %s ", wall(v, v->t0_ns, true, a, sizeof(a)));
	escf(f, "over %.3f s (to %s) · %llu events · time buckets of %s", rel_s(v, v->end_ns),
	     when(v, v->end_ns, b, sizeof(b)), v->st.events, names__duration(v->width_ns, d, sizeof(d)));
	if (!v->realtime0_ns)
		fprintf(f, " · no wall clock (the log has no header)");
	fprintf(f, "</p>\n");

	summary(f, v, &ps);

	fprintf(f, "<section id=\"occupancy\"><h2>Occupancy over time</h2>\n<p>Ports held towards each destination (a <code>connect()</code>'s port is unique per destination; ports held by <code>bind()</code>, listeners and UDP count against every destination), stacked by state, against the capacity of the namespace's ephemeral range.</p>\n");
	legend(f);
	if (!v->ndests)
		fprintf(f, "<p>Nothing to draw.</p>\n");
	for (unsigned int i = 0; i < v->ndests; i++) {
		const struct report_series *s = v->dests[i];

		fprintf(f, "<figure class=\"dest\" data-capacity=\"%u\" data-failures=\"%llu\" data-peak=\"%u\"><h3>",
			s->last.capacity, s->last.failures, s->last.peak);
		esc(f, dest_name(&s->last, d, sizeof(d)));
		fprintf(f, "</h3><p>");
		escf(f, "at the end %u of %u held; peak %u at %s; %llu failed", s->last.occupancy,
		     s->last.capacity, s->last.peak, when(v, s->last.peak_ns, a, sizeof(a)),
		     s->last.failures);
		if (s->last.lat_n)
			escf(f, "; %llu connect() calls", s->last.lat_n);
		if (s->full_in_s > 0) {
			char eta[32];

			escf(f, "; filling up: full in %s at the net rate of the last 10 s (dashed)",
			     names__eta(s->full_in_s, false, eta, sizeof(eta)));
		}
		fprintf(f, "</p>\n");
		occupancy_chart(f, v, s, &x, i);
		latency_chart(f, v, s, &x, i);
		dest_table(f, v, s);
		fprintf(f, "</figure>\n");
	}
	if (v->dests_seen > v->ndests || v->dests_dropped)
		fprintf(f, "<p class=\"note\">%u destinations of %u followed are drawn (the fullest by peak against capacity, then failures)%s.</p>\n",
			v->ndests, v->dests_seen,
			v->dests_dropped ? "; more were followed for a while and gave way to fuller ones" : "");
	fprintf(f, "</section>\n");

	processes(f, v, tl, &ps, &x);
	listeners(f, v);

	fprintf(f, "<footer><p class=\"note\">Made by porttrace %s. Time buckets of %s: a bucket shows the state at its end, the highest occupancy within it (exact where it is the destination's peak), its failures and the p50/p99 of its <code>connect()</code> calls. Wall-clock times are UTC.</p></footer>\n",
		PT_VERSION, names__duration(v->width_ns, d, sizeof(d)));
	fprintf(f, "<div id=\"cursor\"></div>\n<script>");
	fprintf(f, script, W, LM, W - RM, LM, W - LM - RM);
	fprintf(f, "</script>\n</body></html>\n");
	free(ps.v);
	return ferror(f) ? -EIO : 0;
}
