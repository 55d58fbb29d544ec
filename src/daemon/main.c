/* tcpfiled: command line, configuration, then the master until shutdown. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "build_config.h"
#include "config.h"
#include "cryptomod.h"
#include "sdlib.h"
#include "log.h"
#include "master.h"
#include "sharecheck.h"
#include "passwd.h"
#include "status.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tcpfiled [-c FILE] [-t] [-h] [-V]\n"
		"       tcpfiled passwd [-c FILE] [-f USERS_FILE] [-i ITERATIONS] USER\n"
		"       tcpfiled status [-c FILE] [--json]\n"
		"  -c FILE  configuration file (default %s)\n"
		"  -t       check the configuration and exit\n"
		"  -h       show this help\n"
		"  -V       show the version\n",
		TCPFILED_CONFIG_PATH);
}

int main(int argc, char **argv)
{
	const char *config_path = TCPFILED_CONFIG_PATH;
	char err[CONFIG_ERROR_MAX];
	struct config *conf = NULL;
	bool check_only = false;
	int opt, r;

	if (argc > 1 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1, TCPFILED_CONFIG_PATH);
	while ((opt = getopt(argc, argv, "c:thV")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("tcpfiled %s\n", TCPFILED_VERSION);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tcpfiled: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}

	log_init("tcpfiled");
	r = config_load(config_path, &conf, err, sizeof(err));
	/* Shares are opened as the workers will, so that -t, start-up and
	 * reload agree on what is servable. */
	if (r == 0 && (r = sharecheck_config(conf, err, sizeof(err))) < 0)
		config_free(conf);
	if (r < 0) {
		if (check_only)
			fprintf(stderr, "%s\n", err);
		else
			log_err("%s", err);
		return EX_CONFIG;
	}
	if (check_only) {
		printf("%s: configuration OK\n", config_path);
		config_free(conf);
		return EX_OK;
	}
	log_set_level(conf->log_level);
	/* systemd waits for READY=1 (and WATCHDOG=1): without libsystemd it
	 * would kill the unit at its timeout, with no word of why. */
	if ((sdlib_wanted("NOTIFY_SOCKET") || sdlib_wanted("WATCHDOG_USEC")) && !sdlib_get()) {
		log_err("systemd expects notifications (NOTIFY_SOCKET): %s", sdlib_error());
		config_free(conf);
		return EX_OSERR;
	}
	/* The workers load the crypto module when a client first needs it
	 * (SHA-256): from the file there is now, even after an upgrade. */
	r = cryptomod_pin();
	if (r < 0)
		log_warn("crypto module %s: %s; TLS, logins and SHA-256 digests are unavailable "
			 "until it is installed", cryptomod_path(), strerror(-r));
	return master_run(conf, config_path);
}
