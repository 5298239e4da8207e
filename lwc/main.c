#include <stdio.h>
int main(void) { puts("lwc: placeholder"); return 0; }
