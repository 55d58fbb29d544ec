/* passwd: `tcpfiled passwd`, which adds or changes a user in the users file. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "users.h"

/* 160000 rounds of PBKDF2-HMAC-SHA-256 cost about 80 ms on the machine
 * this was measured on (0.5 us per round): 39 times SCRAM's minimum of 4096,
 * paid once per login by the client only (the server keeps StoredKey and
 * ServerKey and never runs PBKDF2). */
#define PASSWD_ITERATIONS_DEFAULT 160000
#define PASSWD_SALT_LEN           16
#define PASSWD_PASSWORD_MAX       1024      /* bytes */

/* Builds the entry for name and password with a fresh random salt (from
 * getrandom) through GNU SASL.  Returns 0, -EINVAL (bad name, empty
 * password, iterations out of range, password not valid for SASLprep),
 * -ENOMEM or -errno. */
int passwd_make_user(const char *name, const char *password, uint32_t iterations,
		     struct user *out);

/* Adds u to the users file at path, or replaces the line of the same name,
 * keeping every other line (comments included) as it was.  The file is
 * first loaded as the daemon would (so a malformed or loosely protected
 * file is refused), then rewritten atomically: a temporary file in the
 * same directory with the old file's mode and owner (0600 for a new file),
 * fsync, rename, fsync of the directory.  Concurrent runs are serialised
 * with flock on the file.  Returns 0 or -errno with why in err. */
int passwd_update_file(const char *path, const struct user *u, char *err, size_t errlen);

/* Reads the password: twice with echo off from /dev/tty when standard input
 * is a terminal (both must match), otherwise one line from standard input.
 * Returns its length, or -errno with why in err (-ECANCELED on a signal). */
int passwd_read_password(const char *user, char *buf, size_t cap, char *err, size_t errlen);

/* The subcommand: argv[0] is "passwd".  Returns an exit status. */
int passwd_main(int argc, char **argv);
