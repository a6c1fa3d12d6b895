/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * escape: the one place where strings that came from the kernel or from a
 * log (process names, service names, anything a local user can choose) are
 * made safe before they are written. Any local user can name a process
 * (prctl(PR_SET_NAME), an executable's name), so a name may carry terminal
 * escape sequences, newlines that forge report lines, or bytes that are not
 * UTF-8.
 *
 * For people (text reports, text events, CSV, top): valid UTF-8 passes
 * through; a control character (C0, DEL, the C1 range U+0080-U+009F that
 * terminals also obey), a bidirectional-text control (which reorders what a
 * line shows) and every byte that is not valid UTF-8 are shown as \xNN per
 * byte, and a backslash as \\, so that what is shown reads back unambiguously.
 *
 * For JSON: valid UTF-8 passes through as UTF-8; '"', '\' and C0/DEL are
 * escaped as JSON requires; a byte that is not valid UTF-8 becomes \udcNN,
 * the lone low surrogate that Python's "surrogateescape" (PEP 383) uses: no
 * valid UTF-8 text can contain a surrogate, so it cannot be mistaken for a
 * real character, and the original bytes come back exactly.
 */
#ifndef PT_ESCAPE_H
#define PT_ESCAPE_H

#include <stddef.h>

/* Room for max bytes of input: at most "\xNN" per byte, and a NUL. */
#define ESCAPE_TEXT_LEN(max) (4 * (max) + 1)
/* Room for max bytes of input: at most "\udcNN" per byte, quotes, NUL. */
#define ESCAPE_JSON_LEN(max) (6 * (max) + 3)

/* Append s (at most max bytes, up to its NUL) shown safely for people; no
 * NUL is written. *cols (may be NULL) gets the columns it takes on a
 * terminal, counting each character as one. */
char *escape__text_put(char *p, const char *s, size_t max, size_t *cols);
/* The same into buf (ESCAPE_TEXT_LEN(max) bytes), NUL-terminated; returns buf. */
const char *escape__text(char *buf, const char *s, size_t max);

/* Append s (at most max bytes) as a JSON string, quotes included; no NUL. */
char *escape__json_put(char *p, const char *s, size_t max);

#endif /* PT_ESCAPE_H */
