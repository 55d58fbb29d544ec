#include "listener.h"
