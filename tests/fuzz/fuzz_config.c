/* fuzz_config: libFuzzer target for the INI loader (config_load_string). */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include "config.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[CONFIG_ERROR_MAX];
	struct config *c = NULL;
	if (!text) return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (config_load_string(text, "fuzz.conf", &c, err, sizeof(err)) == 0)
		config_free(c);
	free(text);
	return 0;
}
