/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * addr: the one address formatter. An address is a family (AF_INET or
 * AF_INET6) and 16 bytes (an IPv4 one in the first 4), as bpf/porttrace.h
 * carries it. The bare address is "1.2.3.4" or "::1" (inet_ntop()'s text,
 * so an IPv4-mapped one reads "::ffff:1.2.3.4"); with a port, IPv6 is
 * bracketed as ss(8) and URLs write it: "1.2.3.4:80", "[::1]:80". The
 * wire contract has two families: any other than AF_INET is read as IPv6,
 * so every address has a text.
 *
 * The JSON stream formats two addresses per event, so IPv4 is written here
 * byte by byte rather than through inet_ntop(), which was most of the
 * formatter's time.
 */
#ifndef PT_ADDR_H
#define PT_ADDR_H

#include <netinet/in.h>
#include <linux/types.h>

/* Room for any address with a port: "[" INET6 "]:65535" and a NUL. */
#define ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

/* Append the bare address at p (no NUL); returns the end. p has room for
 * INET6_ADDRSTRLEN bytes. */
char *addr__put(char *p, __u8 family, const __u8 *addr);
/* The same with ":port", IPv6 in brackets; p has ADDR_STRLEN bytes. */
char *addr__put_port(char *p, __u8 family, const __u8 *addr, __u16 port);

/* NUL-terminated into buf, INET6_ADDRSTRLEN bytes; returns buf. */
const char *addr__str(char *buf, __u8 family, const __u8 *addr);
/* The same with ":port", buf ADDR_STRLEN bytes. */
const char *addr__str_port(char *buf, __u8 family, const __u8 *addr, __u16 port);

#endif /* PT_ADDR_H */
