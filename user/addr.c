// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include "addr.h"

static char *put_octet(char *p, unsigned int v)
{
	if (v >= 100) {
		*p++ = '0' + v / 100;
		v %= 100;
		*p++ = '0' + v / 10;
	} else if (v >= 10) {
		*p++ = '0' + v / 10;
	}
	*p++ = '0' + v % 10;
	return p;
}

char *addr__put(char *p, __u8 family, const __u8 *addr)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n;

	if (family == AF_INET) {
		for (int i = 0; i < 4; i++) {
			if (i)
				*p++ = '.';
			p = put_octet(p, addr[i]);
		}
		return p;
	}
	/* Cannot fail: a known family, and room for the longest text. */
	inet_ntop(AF_INET6, addr, tmp, sizeof(tmp));
	n = strlen(tmp);
	memcpy(p, tmp, n);
	return p + n;
}

char *addr__put_port(char *p, __u8 family, const __u8 *addr, __u16 port)
{
	bool v6 = family != AF_INET;
	char digits[5];
	int n = 0;

	if (v6)
		*p++ = '[';
	p = addr__put(p, family, addr);
	if (v6)
		*p++ = ']';
	*p++ = ':';
	do {
		digits[n++] = '0' + port % 10;
		port /= 10;
	} while (port);
	while (n)
		*p++ = digits[--n];
	return p;
}

const char *addr__str(char *buf, __u8 family, const __u8 *addr)
{
	*addr__put(buf, family, addr) = '\0';
	return buf;
}

const char *addr__str_port(char *buf, __u8 family, const __u8 *addr, __u16 port)
{
	*addr__put_port(buf, family, addr, port) = '\0';
	return buf;
}
