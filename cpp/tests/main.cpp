// Runs the registered tests: trtverify_*_tests [NAME_FILTER [FIXTURE_DIR]]
#include "check.h"

int main(int argc, char** argv) { return check::run_all(argc, argv); }
