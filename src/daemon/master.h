/* master: supervision of the worker processes, signals, respawn, reload
 * and graceful shutdown. */
#pragma once

#include "config.h"

/* Runs the master until shutdown.  Takes ownership of conf.  config_path
 * is re-read on SIGHUP.  Returns a sysexits.h exit status: 0 after a clean
 * shutdown, 70 after a crash loop, 71 when it cannot listen or start. */
int master_run(struct config *conf, const char *config_path);
