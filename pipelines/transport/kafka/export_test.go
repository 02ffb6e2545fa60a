package kafka

import "github.com/twmb/franz-go/pkg/kadm"

// What the external tests (package kafka_test, which imports
// internal/benchkit and so, through pipelines/transports, this package)
// need of the package's insides.

// Member is a member's Consumer as Consume makes it.
type Member = consumer

// AssignedPartitions lists the partitions the member owns now.
func (k *consumer) AssignedPartitions() []int32 { return k.assignedPartitions() }

// AssignmentChanged is closed at the next change of any member's
// partitions on c.
func (c *Conn) AssignmentChanged() <-chan struct{} { return c.assignmentChanged() }

// Admin is c's admin client.
func (c *Conn) Admin() *kadm.Client { return c.adm }

// FormatMark is the redelivery mark a commit carries for high.
func FormatMark(high int64) string { return formatMark(high) }

// MaxTopicLen is the longest topic name Kafka takes.
const MaxTopicLen = maxTopicLen
