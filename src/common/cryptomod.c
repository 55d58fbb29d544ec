/* cryptomod: the table tcpfile-crypto.so exports, its only visible symbol
 * (the module is built with hidden visibility, so its copies of netio.c,
 * parse.c and users.c never interpose on the program's). */
#include "cryptomod.h"

#include "build_config.h"

__attribute__((visibility("default")))
extern const struct cryptomod tcpfile_cryptomod;

const struct cryptomod tcpfile_cryptomod = {
	.version = TCPFILED_VERSION,
	.abi = CRYPTOMOD_ABI,

	.tls_server_ctx_new = tls_server_ctx_new,
	.tls_client_ctx_new = tls_client_ctx_new,
	.tls_client_ctx_new_pinned = tls_client_ctx_new_pinned,
	.tls_ctx_free = tls_ctx_free,
	.tls_parse_pin = tls_parse_pin,
	.tls_conn_accept = tls_conn_accept,
	.tls_conn_connect = tls_conn_connect,
	.tls_conn_nonblocking = tls_conn_nonblocking,
	.tls_conn_exporter = tls_conn_exporter,
	.tls_conn_ktls_send = tls_conn_ktls_send,
	.tls_conn_version = tls_conn_version,
	.tls_ktls_possible = tls_ktls_possible,

	.sha256_new = sha256_new,
	.sha256_update = sha256_update,
	.sha256_final = sha256_final,
	.sha256_free = sha256_free,

	.scram_base64 = scram_base64,
	.scram_base64_length = scram_base64_length,
	.scram_secrets = scram_secrets,

	.auth_init = auth_init,
	.auth_done = auth_done,
	.auth_ready = auth_ready,
	.auth_start = auth_start,
	.auth_step = auth_step,
	.auth_user = auth_user,
	.auth_claimed_user = auth_claimed_user,
	.auth_failure_reason = auth_failure_reason,
	.auth_free = auth_free,

	.login_start = login_start,
	.login_mechanism = login_mechanism,
	.login_step = login_step,
	.login_free = login_free,
};
