#include "scoreboard.h"
