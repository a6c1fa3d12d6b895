// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "names.h"
#include "porttrace.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Kernel TCP_* numbers (include/net/tcp_states.h). */
static const char *const tcp_states[] = {
	[1] = "ESTABLISHED", [2] = "SYN_SENT",	 [3] = "SYN_RECV",
	[4] = "FIN_WAIT1",   [5] = "FIN_WAIT2",	 [6] = "TIME_WAIT",
	[7] = "CLOSE",	     [8] = "CLOSE_WAIT", [9] = "LAST_ACK",
	[10] = "LISTEN",     [11] = "CLOSING",	 [12] = "NEW_SYN_RECV",
	[13] = "BOUND_INACTIVE",
};

static const char *const port_kinds[] = {
	[PT_PORT_BIND] = "bind",	 [PT_PORT_BIND_FAIL] = "bind-fail",
	[PT_PORT_ALLOC] = "alloc",	 [PT_PORT_ALLOC_FAIL] = "alloc-fail",
	[PT_PORT_CONNECT] = "connect",	 [PT_PORT_LISTEN] = "listen",
	[PT_PORT_RELEASE] = "release",	 [PT_PORT_TIMEWAIT] = "time-wait",
	[PT_PORT_EXISTING] = "existing", [PT_PORT_ACCEPT] = "accept",
};

static const char *const reasons[] = {
	[PT_REASON_NONE] = "",
	[PT_REASON_CLOSE] = "close",
	[PT_REASON_RST_SENT] = "rst-sent",
	[PT_REASON_RST_RECV] = "rst-received",
	[PT_REASON_REFUSED] = "refused",
	[PT_REASON_TIMEOUT] = "timeout",
	[PT_REASON_SOCK_CLOSE] = "socket-closed",
	[PT_REASON_EXIT] = "process-exit",
	[PT_REASON_TW_EXPIRED] = "time-wait-expired",
	[PT_REASON_NO_PORT] = "no-free-port",
	[PT_REASON_TW_GONE] = "time-wait-gone",
	[PT_REASON_DISCONNECT] = "disconnect",
	[PT_REASON_UNREACHABLE] = "unreachable",
	[PT_REASON_ERROR] = "error",
};

static const char *const opt_names[] = {
	"REUSEADDR", "REUSEPORT", "BIND_ADDRESS_NO_PORT", "BOUND",
};

static const char *lookup(const char *const *tab, size_t n, unsigned int v)
{
	return v < n && tab[v] ? tab[v] : NULL;
}

static int parse(const char *const *tab, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (tab[i] && strlen(tab[i]) == len && !memcmp(tab[i], s, len))
			return (int)i;
	return -1;
}

const char *names__tcp_state(unsigned int state)
{
	const char *s = lookup(tcp_states, ARRAY_SIZE(tcp_states), state);

	return s ? s : "UNKNOWN";
}

int names__tcp_state_parse(const char *s, size_t len)
{
	return parse(tcp_states, ARRAY_SIZE(tcp_states), s, len);
}

const char *names__port_kind(unsigned int kind)
{
	const char *s = lookup(port_kinds, ARRAY_SIZE(port_kinds), kind);

	return s ? s : "unknown";
}

int names__port_kind_parse(const char *s, size_t len)
{
	return parse(port_kinds, ARRAY_SIZE(port_kinds), s, len);
}

const char *names__reason(unsigned int reason)
{
	const char *s = lookup(reasons, ARRAY_SIZE(reasons), reason);

	return s ? s : "unknown";
}

int names__reason_parse(const char *s, size_t len)
{
	return parse(reasons, ARRAY_SIZE(reasons), s, len);
}

const char *names__errno(int err, char *buf, size_t len)
{
	const char *s;

	if (err == 0)
		return NULL;
	s = err > 0 ? strerrorname_np(err) : NULL;
	if (s)
		return s;
	snprintf(buf, len, "E%d", err);
	return buf;
}

int names__errno_parse(const char *s, size_t len)
{
	/* Errno values stay below 200 on every Linux architecture. */
	for (int e = 1; e < 200; e++) {
		const char *n = strerrorname_np(e);

		if (n && strlen(n) == len && !memcmp(n, s, len))
			return e;
	}
	if (len > 1 && s[0] == 'E') {
		char tmp[16];
		char *end;
		long v;

		if (len >= sizeof(tmp))
			return -1;
		memcpy(tmp, s + 1, len - 1);
		tmp[len - 1] = '\0';
		v = strtol(tmp, &end, 10);
		if (*end == '\0' && v > 0 && v < 4096)
			return (int)v;
	}
	return -1;
}

const char *names__proto(unsigned int proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "?";
}

const char *names__port_class(unsigned int port)
{
	if (port < 1024)
		return "well-known";
	if (port < 49152)
		return "registered";
	return port < 65536 ? "dynamic" : "invalid";
}

/*
 * getservbyport() rereads /etc/services on every call; the database is read
 * once into one table per protocol instead.
 */
static const char **services[2];

static void services_load(void)
{
	struct servent *se;

	services[0] = calloc(65536, sizeof(char *));
	services[1] = calloc(65536, sizeof(char *));
	if (!services[0] || !services[1])
		return;
	setservent(1);
	while ((se = getservent())) {
		unsigned int port = ntohs((unsigned short)se->s_port);
		int i = !strcmp(se->s_proto, "tcp") ? 0 : !strcmp(se->s_proto, "udp") ? 1 : -1;

		if (i >= 0 && !services[i][port])
			services[i][port] = strdup(se->s_name);
	}
	endservent();
}

const char *names__service(unsigned int port, unsigned int proto)
{
	static int loaded;

	if (port > 65535 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return NULL;
	if (!loaded) {
		loaded = 1;
		services_load();
	}
	if (!services[0] || !services[1])
		return NULL;
	return services[proto == IPPROTO_UDP][port];
}

const char *names__duration(__u64 ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	else if (ns < 1000ULL * 1000)
		snprintf(buf, len, "%lluus", (unsigned long long)ns / 1000);
	else if (ns < 1000ULL * 1000 * 1000)
		snprintf(buf, len, "%.1fms", ns / 1e6);
	else if (ns < 120ULL * 1000 * 1000 * 1000)
		snprintf(buf, len, "%.2fs", ns / 1e9);
	else
		snprintf(buf, len, "%llum%02llus", (unsigned long long)ns / 60000000000ULL,
			 (unsigned long long)ns / 1000000000ULL % 60);
	return buf;
}

const char *names__eta(double s, bool narrow, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s == 0)
		snprintf(buf, len, "full");
	else if (s < (narrow ? 100 : 60))
		snprintf(buf, len, "%.0fs", s < 1 ? 1 : s);
	else if (narrow && s < 6000)
		snprintf(buf, len, "%.0fm", s / 60);
	else if (narrow)
		snprintf(buf, len, s < 360000 ? "%.0fh" : ">4d", s / 3600);
	else if (s < 3600)
		snprintf(buf, len, "%ldm%02lds", (long)(s / 60), (long)s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%ldh%02ldm", (long)(s / 3600), (long)(s / 60) % 60);
	else
		snprintf(buf, len, ">1d");
	return buf;
}

const char *names__opts(unsigned int opts, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(opt_names); i++) {
		if (!(opts & (1u << i)))
			continue;
		off += snprintf(buf + off, off < len ? len - off : 0, "%s%s", off ? "|" : "",
				opt_names[i]);
	}
	return buf;
}

unsigned int names__opts_parse(const char *s, size_t len)
{
	unsigned int opts = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && s[j] != '|')
			j++;
		int b = parse(opt_names, ARRAY_SIZE(opt_names), s + i, j - i);
		if (b >= 0)
			opts |= 1u << b;
		i = j + 1;
	}
	return opts;
}
