/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Names for the numbers in records. Every lookup takes an unchecked value
 * and returns a string for any input: kernel values are never used as a
 * table index before a range check.
 */
#ifndef PT_NAMES_H
#define PT_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

const char *names__tcp_state(unsigned int state);
/* Parse a state name back (log reader); -1 if unknown. */
int names__tcp_state_parse(const char *s, size_t len);

const char *names__port_kind(unsigned int kind);
int names__port_kind_parse(const char *s, size_t len);

const char *names__reason(unsigned int reason);
int names__reason_parse(const char *s, size_t len);

/* "EADDRNOTAVAIL"; NULL for 0; "E<n>" written to buf when unnamed. */
const char *names__errno(int err, char *buf, size_t len);
int names__errno_parse(const char *s, size_t len);

const char *names__proto(unsigned int proto);	/* "tcp", "udp", "?" */

/* IANA class of a port number. */
const char *names__port_class(unsigned int port);

/* Service name from the services database ("https"), or NULL. */
const char *names__service(unsigned int port, unsigned int proto);

/* A duration for people: "850ns", "12us", "3.1ms", "1.20s", "2m03s". */
const char *names__duration(__u64 ns, char *buf, size_t len);

/* Time until something fills up: "-" (never, at this rate), "full", "42s",
 * ...; narrow keeps it within 4 columns for the 80-column view. */
const char *names__eta(double s, bool narrow, char *buf, size_t len);

/* Names of PT_OPT_* bits, joined by '|' into buf; "" when none. */
const char *names__opts(unsigned int opts, char *buf, size_t len);
unsigned int names__opts_parse(const char *s, size_t len);

#endif /* PT_NAMES_H */
