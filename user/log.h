/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* One way to say what went wrong: "porttrace: ..." on stderr, one line. */
#ifndef PT_LOG_H
#define PT_LOG_H

#include <stdbool.h>

void p_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void p_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void p_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log__set_verbose(bool verbose);
bool log__verbose(void);

#endif /* PT_LOG_H */
