/* transfer: tcpfile put (put.c) and get (get.c), every byte checked against the server's digest. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "client.h"

/* Uploads n LOCAL files over one connection.  Files that fit one frame
 * go out whole (header, DATA, END) and pipelined, their answers read as
 * they come; a larger file asks for CONTINUE (continue=1) and sends at
 * most one frame before it.  A refused or abandoned body ends with ABORT
 * and the next file follows on the same connection.  remote is a
 * normalised SHARE[/PATH]; when remote_is_dir each file goes to
 * remote/basename(LOCAL), else n is 1 and remote names the file.  A LOCAL
 * of "-" (then n is 1 and !remote_is_dir) streams stdin, without size=
 * and without a copy.  no_clobber sends overwrite=0.  Connects itself (c
 * must not be connected).  Every failure is reported and counted in c. */
void transfer_put(struct client *c, char *const *locals, size_t n,
		  const char *remote, bool remote_is_dir, bool no_clobber);

/* Downloads n normalised REMOTE files over c's connection.  local_is_dir:
 * each goes to local/basename(REMOTE); else n is 1 and local names the
 * file, or is "-" for stdout.  Regular files are written to a temporary
 * file beside the destination, given the remote mode (through the umask,
 * as cp(1) does) and mtime, fsync'ed and renamed over the destination
 * only if the END's digest matched what arrived; stdout and other
 * non-regular destinations (a FIFO, /dev/null) are written straight
 * through, and a mismatch there is reported after the fact.  A body the
 * server ABORTs is reported and leaves nothing; the next file follows on
 * the same connection.  Failures are reported and counted in c. */
void transfer_get(struct client *c, char *const *remotes, size_t n,
		  const char *local, bool local_is_dir);
