package automation

// HealKilledHelmOperations is Up's state read, for BenchmarkUpReadsState.
var HealKilledHelmOperations = healKilledHelmOperations

// ClearRedoneCreates is Up's last step, for BenchmarkClearRedoneCreates.
var ClearRedoneCreates = clearRedoneCreates
