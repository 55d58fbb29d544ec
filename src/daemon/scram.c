/* scram: SCRAM-SHA-256 secrets and base64 through GNU SASL. */
#include "scram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gsasl.h>

static int scram_from_gsasl(int rc)
{
	return rc == GSASL_MALLOC_ERROR ? -ENOMEM : -EINVAL;
}

int scram_base64(const void *bin, size_t len, char *dst, size_t cap)
{
	char *b64 = NULL;
	size_t n = 0;
	int rc, r = 0;

	rc = gsasl_base64_to(bin, len, &b64, &n);
	if (rc != GSASL_OK)
		return -ENOMEM;
	if (n >= cap)
		r = -ENOSPC;
	else
		memcpy(dst, b64, n + 1);
	gsasl_free(b64);
	return r;
}

int scram_base64_length(const char *s, size_t len, size_t *binlen)
{
	char *bin = NULL;
	int rc;

	*binlen = 0;
	rc = gsasl_base64_from(s, len, &bin, binlen);
	if (rc != GSASL_OK)
		return scram_from_gsasl(rc);
	gsasl_free(bin);
	return 0;
}

int scram_take_output(char *o, size_t olen, char **out, size_t *outlen)
{
	*out = malloc(olen + 1);
	if (!*out) {
		gsasl_free(o);
		return -ENOMEM;
	}
	if (olen)
		memcpy(*out, o, olen);
	(*out)[olen] = '\0';
	*outlen = olen;
	gsasl_free(o);
	return 0;
}

int scram_secrets(const char *password, uint32_t iterations, const void *salt,
		  size_t saltlen, unsigned char stored_key[SCRAM_KEY_BYTES],
		  unsigned char server_key[SCRAM_KEY_BYTES])
{
	char salted[GSASL_HASH_SHA256_SIZE], client_key[GSASL_HASH_SHA256_SIZE];
	char server[GSASL_HASH_SHA256_SIZE], stored[GSASL_HASH_SHA256_SIZE];
	int rc, r = 0;

	_Static_assert(GSASL_HASH_SHA256_SIZE == SCRAM_KEY_BYTES, "SHA-256 keys");
	rc = gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, password, iterations,
					       salt, saltlen, salted, client_key,
					       server, stored);
	if (rc != GSASL_OK)
		r = scram_from_gsasl(rc);
	else {
		memcpy(stored_key, stored, SCRAM_KEY_BYTES);
		memcpy(server_key, server, SCRAM_KEY_BYTES);
	}
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	explicit_bzero(server, sizeof(server));
	explicit_bzero(stored, sizeof(stored));
	return r;
}
