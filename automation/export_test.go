package automation

// HealKilledHelmOperations is Up's state read, for BenchmarkUpReadsState.
var HealKilledHelmOperations = healKilledHelmOperations
