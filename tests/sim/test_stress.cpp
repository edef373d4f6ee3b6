#include "sim_test_util.h"
