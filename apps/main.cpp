// apps/main.cpp: placeholder entry (replaced below)
int main() { return 0; }
