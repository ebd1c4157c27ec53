package host

// Announced is the address the registry is told for s bound at addr.
var Announced = (*Service).announced
