#include "master.h"
