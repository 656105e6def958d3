module ollama-operator.local/tools/pause

go 1.22
