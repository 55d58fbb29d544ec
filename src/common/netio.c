#include "netio.h"
