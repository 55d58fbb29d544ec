/* status: `tcpfiled status`, the running daemon's scoreboard for people
 * (like `apachectl status`) and for programs (--json). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "scoreboard.h"

/* Exit status when no daemon is running (no board file, or one left by a
 * master that is gone), as LSB and `systemctl status` use it. */
#define STATUS_NOT_RUNNING 3

/* The command: argv after "status" ([-c FILE] [--json] [-h]).  Returns
 * the exit status: 0, STATUS_NOT_RUNNING, 64 usage, 66 board unreadable,
 * 77 permission denied, 78 bad config. */
int status_main(int argc, char **argv, const char *default_config);

/* Writes the board as text or JSON to out; now_mono_ms and now_real_ms
 * are the reader's clocks (CLOCK_MONOTONIC, CLOCK_REALTIME).  Returns 0
 * or -EIO when out failed. */
int status_render(const struct scoreboard *sb, bool json, uint64_t now_mono_ms,
		  uint64_t now_real_ms, FILE *out);
