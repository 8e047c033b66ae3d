"""Leader-only controllers: each reads state at index N, decides (pure), proposes, waits past N."""
