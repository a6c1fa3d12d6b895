// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * libFuzzer target: any bytes as one log line. The reader must answer with
 * an event, "not an event" or "malformed", and never read out of bounds,
 * overflow or hang (ASan and UBSan watch).
 */
#include <stddef.h>
#include <stdint.h>
#include "logreader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct logreader *r;
	struct pt_event ev;

	if (!r)
		r = logreader__new();
	logreader__parse_line(r, (const char *)data, size, &ev);
	return 0;
}
